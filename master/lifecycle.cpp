#include "master/lifecycle.h"

namespace aiowsgi::master {

MasterState next_state(MasterState s, Event e) {
  switch (s) {
    case MasterState::kStarting:
      switch (e) {
        case Event::kTerm:
          return MasterState::kStopping;
        case Event::kQuit:
          return MasterState::kKilling;
        case Event::kWorkerReady:
          return MasterState::kRunning;
        case Event::kBootFailed:  // stop the others; the master exits with the worker's code
          return MasterState::kStopping;
        default:  // a HUP now is deferred until the generation is ready
          return s;
      }
    case MasterState::kRunning:
      switch (e) {
        case Event::kTerm:
          return MasterState::kStopping;
        case Event::kQuit:
          return MasterState::kKilling;
        case Event::kHup:
          return MasterState::kReloading;
        default:  // a respawned worker failing to boot is only respawned again (back-off)
          return s;
      }
    case MasterState::kReloading:
      switch (e) {
        case Event::kTerm:
          return MasterState::kStopping;
        case Event::kQuit:
          return MasterState::kKilling;
        case Event::kReloadDone:
        case Event::kReloadFailed:
        case Event::kBootFailed:  // the old generation keeps serving
          return MasterState::kRunning;
        default:
          return s;
      }
    case MasterState::kStopping:
      switch (e) {
        case Event::kQuit:
        case Event::kGraceExpired:
          return MasterState::kKilling;
        case Event::kAllExited:
          return MasterState::kDone;
        default:
          return s;
      }
    case MasterState::kKilling:
      return e == Event::kAllExited ? MasterState::kDone : s;
    case MasterState::kDone:
      return s;
  }
  return s;
}

const char* master_state_name(MasterState s) {
  switch (s) {
    case MasterState::kStarting:
      return "starting";
    case MasterState::kRunning:
      return "running";
    case MasterState::kReloading:
      return "reloading";
    case MasterState::kStopping:
      return "stopping";
    case MasterState::kKilling:
      return "killing";
    case MasterState::kDone:
      return "done";
  }
  return "unknown";
}

const char* event_name(Event e) {
  switch (e) {
    case Event::kChildExited:
      return "child-exited";
    case Event::kTerm:
      return "term";
    case Event::kQuit:
      return "quit";
    case Event::kHup:
      return "hup";
    case Event::kTtin:
      return "ttin";
    case Event::kTtou:
      return "ttou";
    case Event::kTick:
      return "tick";
    case Event::kWorkerReady:
      return "worker-ready";
    case Event::kBootFailed:
      return "boot-failed";
    case Event::kReloadDone:
      return "reload-done";
    case Event::kReloadFailed:
      return "reload-failed";
    case Event::kGraceExpired:
      return "grace-expired";
    case Event::kAllExited:
      return "all-exited";
  }
  return "unknown";
}

}  // namespace aiowsgi::master
