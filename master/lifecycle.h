// Lifecycle: the master's states, the events that move it between them, and the pure
// transition function the Arbiter applies to every event. No syscalls, so tests walk every
// edge without forking. Master only; no Python.
#pragma once

namespace aiowsgi::master {

enum class MasterState {
  kStarting,   // first generation booting; a boot or import failure stops the master
  kRunning,    // serving; dead workers are respawned
  kReloading,  // HUP: a new generation boots beside the old one
  kStopping,   // TERM: workers drain, up to server.graceful_timeout
  kKilling,    // INT/QUIT, or the graceful timeout passed: workers are killed
  kDone,       // every worker reaped; the loop exits
};

enum class Event {
  kChildExited,   // a worker was reaped
  kTerm,          // SIGTERM
  kQuit,          // SIGQUIT or SIGINT
  kHup,           // SIGHUP (or a deferred one, once the generation is ready)
  kTtin,          // SIGTTIN
  kTtou,          // SIGTTOU
  kTick,          // time passed (the 1 s tick or a deadline timer)
  kWorkerReady,   // a worker reported kReady
  kBootFailed,    // a worker of a starting generation failed to import the app or boot
  kReloadDone,    // every slot is served by the new generation
  kReloadFailed,  // the new config or generation is unusable; the old one keeps serving
  kGraceExpired,  // server.graceful_timeout passed while stopping
  kAllExited,     // no worker process is left
};

inline constexpr MasterState kAllMasterStates[] = {MasterState::kStarting, MasterState::kRunning,
                                                   MasterState::kKilling,  MasterState::kReloading,
                                                   MasterState::kStopping, MasterState::kDone};
inline constexpr Event kAllEvents[] = {
    Event::kChildExited, Event::kTerm,       Event::kQuit,         Event::kHup,
    Event::kTtin,        Event::kTtou,       Event::kTick,         Event::kWorkerReady,
    Event::kBootFailed,  Event::kReloadDone, Event::kReloadFailed, Event::kGraceExpired,
    Event::kAllExited};

// The lifecycle transition for |e| in state |s|; no side effects (tests walk every edge).
// Events that do not change the lifecycle (TTIN, a tick, a reaped child, ...) return |s|.
MasterState next_state(MasterState s, Event e);

const char* master_state_name(MasterState s);
const char* event_name(Event e);

}  // namespace aiowsgi::master
