// The Arbiter's side of [server] preload (SPEC.md "Preload"): when a generation's preload
// process is started, how workers are asked of it, and what its death means. The processes
// and their channel are master/preload.h's. Master only; no Python.
#include <errno.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>

#include "common/exit_codes.h"
#include "common/log.h"
#include "common/stats_board.h"
#include "master/arbiter.h"
#include "master/file_watcher.h"
#include "master/preload.h"
#include "master/stats_server.h"

namespace aiowsgi::master {
namespace {

std::string preload_exit_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(status));
    return "killed by signal " + std::to_string(WTERMSIG(status)) +
           (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

}  // namespace

// Which preload process the current state needs, started if missing: the serving one while
// starting or running (after a back-off when the last one died young), the booting one
// during a reload to a preloaded generation.
void Arbiter::ensure_preload() {
  if (!preload_ || !cfg().server.preload) return;
  bool reloading = state_ == MasterState::kReloading;
  if (!reloading && state_ != MasterState::kStarting && state_ != MasterState::kRunning) return;
  if (reloading ? preload_->booting() != nullptr : preload_->serving() != nullptr) return;
  if (!reloading && ev_now(loop_) < preload_retry_at_) return;
  if (preload_main_ == nullptr) {
    spdlog::error("[server] preload is not available in this build; workers import the app");
    return;
  }
  auto fork_child = [this](int child_end, int master_end) {
    ChildSetup setup;
    setup.process_name = "preload";
    setup.main = preload_main_;
    setup.close_first = master_only_fds();
    setup.close_first.push_back(master_end);
    WorkerContext& ctx = setup.context;
    ctx.config = reload_.config().get();
    ctx.worker_id = 0;  // aiowsgi.worker_id() at import time under preload
    ctx.num_workers = target_workers_;
    ctx.sockets = reload_.listeners().worker_sockets();
    ctx.control_fd = child_end;  // the preload channel
    if (file_watcher_ && file_watcher_->fd() >= 0) ctx.close_fds.push_back(file_watcher_->fd());
    if (stats_) {
      for (int fd : stats_->master_fds()) ctx.close_fds.push_back(fd);
    }
    return spawner_.spawn(setup);
  };
  if (Status s = preload_->start(reloading, fork_child); !s.ok()) {
    spdlog::error("cannot start the preload process: {}", s.message());
    if (reloading) {
      fail_reload("no preload process");
    } else {
      preload_backoff_ = next_backoff(preload_backoff_, 0);
      preload_retry_at_ = ev_now(loop_) + preload_backoff_;
    }
  }
}

std::vector<int> Arbiter::master_only_fds() const {
  // The master ends of every control pipe, and a listener a reload is removing
  // (master/listener_set.h removed_fds).
  std::vector<int> fds;
  for (WorkerProcess* q : table_.all()) {
    if (q->control) fds.push_back(q->control.get());
  }
  for (int fd : reload_.listeners().removed_fds()) fds.push_back(fd);
  if (preload_) preload_->channel_fds(&fds);
  return fds;
}

bool Arbiter::preload_gate() {
  ensure_preload();
  PreloadProcess* p = state_ == MasterState::kReloading ? preload_->booting() : preload_->serving();
  // Not ready: on_preload_ready() comes back here once the app is imported.
  return p != nullptr && p->ready && p->channel;
}

Result<pid_t> Arbiter::request_preloaded(WorkerProcess* p, int worker_end) {
  PreloadProcess* from =
      state_ == MasterState::kReloading ? preload_->booting() : preload_->serving();
  PreloadMessage req;
  req.type = PreloadType::kFork;
  req.worker_id = static_cast<uint32_t>(p->id);
  req.num_workers = target_workers_;
  // The board's mapping predates the preload process, so its addresses hold there; a
  // private record made now would not (the worker then goes without one).
  if (stats_ && stats_->board_for_child(p) != nullptr) {
    req.score = reinterpret_cast<uintptr_t>(stats_->score_for_child(p));
    req.board = reinterpret_cast<uintptr_t>(stats_->board_for_child(p));
  }
  if (Status s = preload_->request_fork(from, req, worker_end, p->serial); !s.ok()) {
    return Result<pid_t>::error(s);
  }
  return Result<pid_t>::ok(-1);
}

void Arbiter::apply_fork_outcomes() {
  if (!preload_) return;
  for (ForkOutcome& out : preload_->take_fork_outcomes()) {
    WorkerProcess* p = table_.find_serial(out.serial);
    if (p == nullptr || p->forked()) continue;
    if (out.pid <= 0) {
      // Its slot waited for nothing: it is free again (after a back-off while serving).
      int id = p->id;
      if (stats_) stats_->on_exit(p);
      close_control(p);
      table_.remove_entry(p);
      if (state_ == MasterState::kStarting || state_ == MasterState::kRunning ||
          state_ == MasterState::kReloading) {
        spawn_failed(id, out.why);
      } else {
        spdlog::info("worker {} not started: {}", id, out.why.message());
      }
      continue;
    }
    started(p, out.pid);
    // It may have died before its pid arrived: reaped already, as an unknown child.
    auto it = std::find_if(unclaimed_exits_.begin(), unclaimed_exits_.end(),
                           [&](const UnclaimedExit& e) { return e.pid == out.pid; });
    if (it != unclaimed_exits_.end()) {
      int status = it->status;
      unclaimed_exits_.erase(it);
      on_child(out.pid, status);
    }
  }
  if (!preload_->fork_pending()) unclaimed_exits_.clear();
}

void Arbiter::remember_unclaimed_exit(pid_t pid, int status) {
  // Only while fork answers are awaited, and a few: more would mean the preload process
  // forks far more than it is asked to.
  constexpr size_t kMaxUnclaimed = 64;
  if (unclaimed_exits_.size() == kMaxUnclaimed) unclaimed_exits_.erase(unclaimed_exits_.begin());
  unclaimed_exits_.push_back(UnclaimedExit{pid, status});
}

void Arbiter::on_preload_ready(bool booting) {
  preload_backoff_ = 0;
  if (booting && state_ == MasterState::kReloading) {
    // The new generation, as start_reload() does without preload.
    for (int id = 1; id <= target_workers_; ++id) spawn(id);
  }
  on_event(Event::kTick);  // manage_count() fills the empty slots
}

bool Arbiter::on_preload_exit(pid_t pid, int status) {
  PreloadProcess was;
  if (!preload_ || !preload_->on_child(pid, &was)) return false;
  std::string what =
      "preload process (pid " + std::to_string(pid) + ") " + preload_exit_text(status);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  bool startup_failure = code == kExitAppLoadError || code == kExitBootError;
  if (was.stopping || state_ == MasterState::kStopping || state_ == MasterState::kKilling ||
      state_ == MasterState::kDone) {
    spdlog::info("{}", what);
  } else if (was.booting) {
    spdlog::error("{}", what);
    if (state_ == MasterState::kReloading) {
      fail_reload(startup_failure && !was.ready
                      ? (code == kExitAppLoadError ? "the new code could not be imported"
                                                   : "the new preload process failed to boot")
                      : "the new preload process died");
    }
  } else if (state_ == MasterState::kStarting && !was.ready && startup_failure) {
    spdlog::error("{}: it {}", what,
                  code == kExitAppLoadError ? "could not import the app" : "failed to boot");
    if (exit_code_ == 0) exit_code_ = code;
    spdlog::error("the first generation cannot start; stopping (exit status {})", code);
    on_event(Event::kBootFailed);
    return true;
  } else {
    // Its workers keep serving; replacements wait for a new one, which imports the code as it
    // is on disk now (as a worker respawned without preload would).
    double now = ev_now(loop_);
    preload_backoff_ = next_backoff(preload_backoff_, now - was.started_at);
    preload_retry_at_ = now + preload_backoff_;
    if (preload_backoff_ > 0) {
      spdlog::warn("{}; starting a new one in {:.1f} s", what, preload_backoff_);
    } else {
      spdlog::warn("{}; starting a new one", what);
    }
  }
  on_event(Event::kChildExited);
  return true;
}

}  // namespace aiowsgi::master
