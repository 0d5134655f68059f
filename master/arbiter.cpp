#include "master/arbiter.h"

#include <errno.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

#include "common/address.h"
#include "common/exit_codes.h"
#include "common/guarded.h"
#include "common/log.h"
#include "common/stats_board.h"
#include "common/watch_report.h"
#include "master/file_watcher.h"
#include "master/preload.h"
#include "master/stats_server.h"
#include "master/systemd.h"
#include "master/upgrade.h"

namespace aiowsgi::master {
namespace {

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    std::string s = "killed by signal " + std::to_string(sig) + " (" + signal_name(sig) + ")";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "ended with wait status " + std::to_string(status);
}

bool is_startup_failure(int code) { return code == kExitAppLoadError || code == kExitBootError; }

const char* startup_failure_text(int code) {
  return code == kExitAppLoadError ? "could not import the app" : "failed to boot";
}

}  // namespace

// --- construction and the loop ---------------------------------------------------------------

Arbiter::Arbiter(struct ev_loop* loop, config::CommandLine cli,
                 std::shared_ptr<const config::Config> config, ListenerSet listeners,
                 WorkerMain worker_main, WorkerMain preload_main)
    : loop_(loop),
      reload_(std::move(cli), std::move(config), std::move(listeners)),
      spawner_(loop, worker_main),
      preload_main_(preload_main) {
  target_workers_ = std::max(1, cfg().server.workers);
}

Arbiter::~Arbiter() {
  for (auto& w : signal_watchers_) ev_signal_stop(loop_, w.get());
  ev_child_stop(loop_, &child_watcher_);
  ev_timer_stop(loop_, &tick_);
  ev_timer_stop(loop_, &wakeup_);
  for (WorkerProcess* p : table_.all()) close_control(p);
  // reload_'s ListenerSet removes the unix socket files.
}

int Arbiter::run() {
  for (int sig : kMasterSignals) {
    auto w = std::make_unique<ev_signal>();
    ev_signal_init(w.get(), &Arbiter::signal_cb, sig);
    w->data = this;
    ev_signal_start(loop_, w.get());
    signal_watchers_.push_back(std::move(w));
  }
  // pid 0: any child. libev reaps in its SIGCHLD handling and calls us per exit.
  ev_child_init(&child_watcher_, &Arbiter::child_cb, 0, 0);
  child_watcher_.data = this;
  ev_child_start(loop_, &child_watcher_);
  // Half a second: harakiri and the heartbeat silence are judged at this granularity.
  ev_timer_init(&tick_, &Arbiter::timer_cb, 0.5, 0.5);
  tick_.data = this;
  ev_timer_start(loop_, &tick_);
  ev_init(&wakeup_, &Arbiter::timer_cb);
  wakeup_.data = this;

  spdlog::info("master starting {} worker{} (pid {})", target_workers_,
               target_workers_ == 1 ? "" : "s", getpid());
  // Before the first fork: the workers inherit the StatsBoard mapping.
  stats_ = std::make_unique<StatsServer>(loop_, *this);
  if (Status s = stats_->start(cfg(), std::move(inherited_stats_)); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitBindError;
  }
  // [app] reload: a change to a watched file runs the HUP reload (configured in maintain()).
  file_watcher_ = std::make_unique<FileWatcher>(loop_, [this](const std::string& path, size_t n) {
    request_reload(n > 1 ? fmt::format("{} changed ({} events)", path, n) : path + " changed");
  });
  preload_ = std::make_unique<Preloader>(
      loop_, [this](bool booting) { on_preload_ready(booting); },
      [this](const std::string& files, const std::string& who) {
        if (file_watcher_) file_watcher_->add_report(files, who);
      },
      [this] { on_event(Event::kTick); });  // maintain() takes the fork outcomes
  maintain();                               // spawns the first generation
  if (state_ != MasterState::kDone) ev_run(loop_, 0);
  return exit_code_;
}

// --- libev callbacks: noexcept, and nothing but dispatch -------------------------------------

void Arbiter::signal_cb(struct ev_loop*, ev_signal* w, int) noexcept {
  auto* self = static_cast<Arbiter*>(w->data);
  guarded("signal handler", [&] { self->on_signal(w->signum); });
}

void Arbiter::child_cb(struct ev_loop*, ev_child* w, int) noexcept {
  auto* self = static_cast<Arbiter*>(w->data);
  guarded("child handler", [&] { self->on_child(w->rpid, w->rstatus); });
}

void Arbiter::control_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* p = static_cast<WorkerProcess*>(w->data);
  auto* self = static_cast<Arbiter*>(p->owner);
  guarded("control pipe handler", [&] { self->on_control(p); });
}

void Arbiter::timer_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<Arbiter*>(w->data);
  guarded("timer", [&] { self->on_event(Event::kTick); });
}

// --- events ----------------------------------------------------------------------------------

void Arbiter::on_signal(int signo) {
  switch (signo) {
    case SIGTERM:
      spdlog::info("SIGTERM: graceful shutdown");
      on_event(Event::kTerm);
      return;
    case SIGINT:
    case SIGQUIT:
      spdlog::info("{}: immediate shutdown", signal_name(signo));
      on_event(Event::kQuit);
      return;
    case SIGHUP:
      request_reload("SIGHUP");
      return;
    case SIGTTIN:
    case SIGTTOU:
      if (state_ == MasterState::kStarting || state_ == MasterState::kRunning ||
          state_ == MasterState::kReloading) {
        if (signo == SIGTTIN) {
          ++target_workers_;
          spdlog::info("SIGTTIN: workers {} -> {}", target_workers_ - 1, target_workers_);
        } else if (target_workers_ > 1) {
          --target_workers_;
          spdlog::info("SIGTTOU: workers {} -> {}", target_workers_ + 1, target_workers_);
        } else {
          spdlog::info("SIGTTOU ignored: already at 1 worker");
        }
      }
      on_event(signo == SIGTTIN ? Event::kTtin : Event::kTtou);
      return;
    case SIGUSR1:
      reopen_logs();
      return;
    case SIGUSR2:
      start_upgrade();
      return;
    default:
      return;
  }
}

void Arbiter::request_reload(const std::string& cause) {
  if (state_ == MasterState::kStarting || state_ == MasterState::kReloading) {
    spdlog::info("{}: reload requested; it runs once the current generation is ready", cause);
    hup_pending_ = true;
    on_event(Event::kTick);
  } else if (state_ == MasterState::kRunning) {
    spdlog::info("{}: reload requested", cause);
    on_event(Event::kHup);
  } else {
    spdlog::info("{}: reload ignored: shutting down", cause);
  }
}

void Arbiter::on_child(pid_t pid, int status) {
  if (on_preload_exit(pid, status) || on_upgrade_exit(pid, status)) return;  // not a worker
  // Read what the worker said last (kAppLoadError, ...) first: libev may run this callback
  // before the control pipe's, and closing the pipe would discard the message.
  if (WorkerProcess* live = table_.find(pid); live && live->control) on_control(live);
  std::unique_ptr<WorkerProcess> p = table_.remove(pid);
  if (p && stats_) stats_->on_exit(p.get());
  if (!p) {
    // Not ours: an orphan re-parented to us as PID 1 (a container), or a preloaded worker that
    // died before its pid arrived: kept until the pid comes (apply_fork_outcomes).
    spdlog::debug("reaped unknown child pid {} ({})", pid, describe_exit(status));
    if (preload_ && preload_->fork_pending()) remember_unclaimed_exit(pid, status);
    return;
  }
  close_control(p.get());
  double now = ev_now(loop_);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  // A worker that reached max_requests exits 0 on its own once its connections are done.
  bool expected = p->state == WorkerState::kDraining || p->state == WorkerState::kAborted ||
                  (p->retiring && code == 0);
  bool was_ready = p->ready_at > 0;
  p->state = WorkerState::kExited;
  std::string what = "worker " + std::to_string(p->id) + " (pid " + std::to_string(pid) + ") " +
                     describe_exit(status);

  if (expected || state_ == MasterState::kStopping || state_ == MasterState::kKilling ||
      state_ == MasterState::kDone) {
    spdlog::info("{}", what);
    on_event(Event::kChildExited);
    return;
  }
  // Died unasked.
  if (state_ == MasterState::kStarting && is_startup_failure(code)) {
    spdlog::error("{}: it {}", what, startup_failure_text(code));
    boot_failed(p.get(), code);
    on_event(Event::kChildExited);
    return;
  }
  if (state_ == MasterState::kReloading && p->generation == reload_.generation() && !was_ready) {
    spdlog::error("{}", what);
    fail_reload(is_startup_failure(code) ? std::string("a new worker ") + startup_failure_text(code)
                                         : "a new worker died before it was ready");
    on_event(Event::kChildExited);
    return;
  }
  WorkerSlot& slot = table_.slot(p->id);
  if (WorkerProcess* old = table_.active(p->id); old && old->retiring && !was_ready) {
    // A recycle's replacement failed to start (perhaps the app file is broken now): the
    // worker it was to replace keeps serving, and recycle() tries again after a back-off.
    slot.backoff = next_backoff(slot.backoff, now - p->spawned_at);
    slot.next_spawn_at = now + slot.backoff;
    spdlog::error("{} before it was ready; worker {} (pid {}) keeps serving, next try in {:.1f} s",
                  what, old->id, old->pid, slot.backoff);
    on_event(Event::kChildExited);
    return;
  }
  if (p->id > target_workers_ || table_.active(p->id) != nullptr) {
    spdlog::warn("{}", what);  // slot no longer needed, or already taken over by a new worker
    on_event(Event::kChildExited);
    return;
  }
  slot.backoff = next_backoff(slot.backoff, now - p->spawned_at);
  slot.next_spawn_at = now + slot.backoff;
  std::string suffix;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) suffix = " \u2014 perhaps out of memory";
  if (slot.backoff > 0) {
    spdlog::warn("{}{}; respawning in {:.1f} s", what, suffix, slot.backoff);
  } else {
    spdlog::warn("{}{}; respawning", what, suffix);
  }
  on_event(Event::kChildExited);
}

void Arbiter::on_control(WorkerProcess* p) {
  for (;;) {
    ControlMessage m;
    std::string files;  // a kWatchFiles payload
    RecvResult r = recv_control_or_files(p->control.get(), &m, &files);
    if (r == RecvResult::kMessage && m.type == ControlType::kWatchFiles) {
      if (file_watcher_) {
        file_watcher_->add_report(files, fmt::format("worker {} (pid {})", p->id, p->pid));
      }
      continue;
    }
    if (r == RecvResult::kMessage) {
      on_message(p, m);
      // on_message may have closed the pipe (drain after a boot error).
      if (!p->control) return;
      continue;
    }
    if (r == RecvResult::kAgain) return;
    // The worker closed its end or died: its exit arrives through ev_child.
    close_control(p);
    return;
  }
}

void Arbiter::on_message(WorkerProcess* p, const ControlMessage& m) {
  // Each worker has its own pipe: a message naming another worker comes from a confused (or
  // compromised) sender, and acting on it could misattribute a state change.
  if (m.worker_id != static_cast<uint32_t>(p->id)) {
    warn_unexpected(p, m);
    return;
  }
  switch (m.type) {
    case ControlType::kReady: {
      if (p->ready_at > 0) return;
      p->ready_at = ev_now(loop_);
      if (p->state == WorkerState::kSpawned) p->state = WorkerState::kBooted;
      spdlog::info("worker {} ready (pid {})", p->id, p->pid);
      // A new worker has taken over its slot: the older ones holding that id can go (an
      // older generation after a reload, or the worker a recycle replaces).
      for (WorkerProcess* old : table_.all()) {
        if (old != p && old->id == p->id && old->active() &&
            (old->generation < p->generation || (old->retiring && old->serial < p->serial))) {
          spdlog::info("worker {} (pid {}, generation {}) replaced by pid {}; draining", old->id,
                       old->pid, old->generation, p->pid);
          drain(old, DrainReason::kRestart);
        }
      }
      on_event(Event::kWorkerReady);
      announce_if_all_ready();
      return;
    }
    case ControlType::kHeartbeat: {
      p->last_heartbeat = sanitized_heartbeat(m, p->cores());
      p->last_heartbeat_at = ev_now(loop_);
      return;
    }
    case ControlType::kRetiring:
      on_retiring(p, m.requests);
      return;
    case ControlType::kAppLoadError:
    case ControlType::kBootError: {
      int code = m.type == ControlType::kAppLoadError ? kExitAppLoadError : kExitBootError;
      p->reported_error = code;
      if (state_ == MasterState::kStarting) {
        spdlog::error("worker {} (pid {}) {}", p->id, p->pid, startup_failure_text(code));
        boot_failed(p, code);
      } else if (state_ == MasterState::kReloading && p->generation == reload_.generation() &&
                 p->ready_at == 0) {
        spdlog::error("worker {} (pid {}) {}", p->id, p->pid, startup_failure_text(code));
        fail_reload(std::string("a new worker ") + startup_failure_text(code));
      }
      // Otherwise the worker exits with |code| and is respawned with back-off.
      on_event(Event::kTick);
      return;
    }
    default:
      warn_unexpected(p, m);
      return;
  }
}

void Arbiter::warn_unexpected(WorkerProcess* p, const ControlMessage& m) {
  // Once per process: a worker sending garbage in a loop must not flood the log.
  if (p->warned_unexpected) return;
  p->warned_unexpected = true;
  spdlog::warn(
      "worker {} (pid {}) sent an unexpected control message ({}, type {}, worker id {}); "
      "ignoring it and any more",
      p->id, p->pid, control_type_name(m.type), static_cast<uint32_t>(m.type), m.worker_id);
}

// max_requests is the worker's decision, taken when it hands a request to the app (exact,
// unlike a heartbeat): it has stopped accepting, so its replacement starts now, whatever
// other recycles are in progress. Once ready, the replacement drains it (on_message kReady),
// unless it has finished its connections and exited before.
void Arbiter::on_retiring(WorkerProcess* p, uint64_t requests) {
  if (!p->active() || p->retiring) return;  // already leaving, or a repeated message
  p->retiring = true;
  spdlog::info(
      "worker {} (pid {}) handed its last request ({} of max_requests {}) and stopped "
      "accepting; starting a replacement",
      p->id, p->pid, requests, p->config->limits.max_requests);
  bool serving = state_ == MasterState::kStarting || state_ == MasterState::kRunning ||
                 state_ == MasterState::kReloading;
  if (serving && p->id <= target_workers_ && !table_.has_replacement(p) &&
      ev_now(loop_) >= table_.slot(p->id).next_spawn_at) {
    spawn(p->id);
  }
  on_event(Event::kTick);  // recycle() retries a spawn held back by the respawn back-off
}

void Arbiter::on_event(Event e) {
  MasterState from = state_;
  MasterState to = next_state(from, e);
  if (to != from) {
    spdlog::debug("master {} -> {} on {}", master_state_name(from), master_state_name(to),
                  event_name(e));
    state_ = to;
    notify_systemd_transition(from, to);  // before enter(): it may move on to another state
    enter(from, to, e);
  }
  maintain();
}

void Arbiter::enter(MasterState from, MasterState to, Event e) {
  double now = ev_now(loop_);
  switch (to) {
    case MasterState::kStarting:
      return;
    case MasterState::kRunning:
      if (from == MasterState::kReloading && e == Event::kReloadDone) {
        reload_.commit();
        if (preload_) preload_->promote();  // the old generation's preload process exits
        spdlog::info("reload complete: generation {} serving", reload_.generation());
      }
      return;
    case MasterState::kReloading:
      start_reload();
      return;
    case MasterState::kStopping: {
      double grace = cfg().server.graceful_timeout;
      stop_deadline_ = now + grace;
      if (upgrader_) upgrader_->cancel("this master is stopping");
      spdlog::info("stopping {} worker{} gracefully (up to {} s)", table_.size(),
                   table_.size() == 1 ? "" : "s", grace);
      if (preload_) preload_->stop_all(SIGTERM);  // it holds no request
      // After a binary upgrade the service goes on in the new master's workers.
      DrainReason why = handed_over_ ? DrainReason::kRestart : DrainReason::kShutdown;
      for (WorkerProcess* p : table_.all()) {
        if (p->active()) drain(p, why);
        if (p->stop_deadline == 0 || stop_deadline_ < p->stop_deadline) {
          p->stop_deadline = stop_deadline_;
        }
      }
      return;
    }
    case MasterState::kKilling:
      if (upgrader_) upgrader_->cancel("this master is stopping");
      if (preload_) preload_->stop_all(SIGKILL);
      if (e == Event::kGraceExpired) {
        spdlog::warn("graceful_timeout passed with {} worker{} left; sending SIGKILL",
                     table_.size(), table_.size() == 1 ? "" : "s");
        for (WorkerProcess* p : table_.all()) kill_now(p);
      } else {
        kill_deadline_ = now + kKillGraceSeconds;
        for (WorkerProcess* p : table_.all()) stop_hard(p);
      }
      return;
    case MasterState::kDone:
      ev_break(loop_, EVBREAK_ALL);
      return;
  }
}

// --- processes -------------------------------------------------------------------------------

void Arbiter::spawn(int id) {
  // With preload, workers come from the preload process once it has imported the app.
  if (cfg().server.preload && !preload_gate()) return;
  WorkerSlot& slot = table_.slot(id);
  double now = ev_now(loop_);
  Result<ControlPair> pair = make_control_pair();
  if (!pair.ok()) {
    spawn_failed(id, pair.status());
    return;
  }
  auto proc = std::make_unique<WorkerProcess>();
  proc->id = id;
  proc->generation = reload_.generation();
  proc->serial = next_serial_++;
  proc->spawned_at = now;
  proc->config = reload_.config();
  proc->control = std::move(pair.value().master_end);
  WorkerProcess* p = table_.add(std::move(proc));
  if (stats_) stats_->on_spawn(p);

  ChildSetup setup;
  setup.process_name = "worker " + std::to_string(id);
  setup.close_first = master_only_fds();
  WorkerContext& ctx = setup.context;
  ctx.config = p->config.get();
  ctx.worker_id = id;
  ctx.num_workers = target_workers_;
  ctx.sockets = reload_.listeners().worker_sockets();
  ctx.control_fd = pair.value().worker_end.get();
  if (file_watcher_ && file_watcher_->fd() >= 0) ctx.close_fds.push_back(file_watcher_->fd());
  if (stats_) {
    for (int fd : stats_->master_fds()) ctx.close_fds.push_back(fd);
    StatsServer* stats = stats_.get();
    setup.in_child = [stats, p](WorkerContext* c) {
      c->score = stats->score_for_child(p);
      c->board = stats->board_for_child(p);
    };
  }
  // With preload the pid comes later (apply_fork_outcomes); the slot is taken meanwhile.
  Result<pid_t> pid =
      cfg().server.preload ? request_preloaded(p, ctx.control_fd) : spawner_.spawn(setup);
  // The worker's end lives on in the child only (closed here when |pair| goes).
  if (!pid.ok()) {
    if (stats_) stats_->on_exit(p);
    table_.remove_entry(p);
    spawn_failed(id, pid.status());
    return;
  }
  if (slot.last_spawn > 0) ++slot.respawn_count;
  slot.last_spawn = now;
  if (pid.value() > 0) started(p, pid.value());
}

void Arbiter::started(WorkerProcess* p, pid_t pid) {
  p->pid = pid;
  ev_io_init(&p->io, &Arbiter::control_cb, p->control.get(), EV_READ);
  p->io.data = p;
  p->owner = this;
  ev_io_start(loop_, &p->io);
  spdlog::info("worker {} started, pid {}", p->id, p->pid);
  // Asked to leave while its pid was unknown: the signal it missed. (A command sent on the
  // control pipe meanwhile is waiting there.)
  if (p->kill_sent) {
    ::kill(p->pid, SIGKILL);
  } else if (p->state == WorkerState::kAborted) {
    ::kill(p->pid, SIGQUIT);
  } else if (p->state == WorkerState::kDraining) {
    ::kill(p->pid, SIGTERM);
  }
}

void Arbiter::spawn_failed(int id, const Status& why) {
  spdlog::error("cannot start worker {}: {}", id, why.message());
  WorkerSlot& slot = table_.slot(id);
  slot.backoff = next_backoff(slot.backoff, 0);
  slot.next_spawn_at = ev_now(loop_) + slot.backoff;
}

void Arbiter::drain(WorkerProcess* p, DrainReason reason) {
  if (!p->active()) return;
  p->state = WorkerState::kDraining;
  p->stop_deadline = ev_now(loop_) + cfg().server.graceful_timeout;
  // The message before the signal: the worker's SIGTERM handler reads the pipe first, so it
  // learns the reason whichever of the two its loop sees first.
  Status s = p->control ? send_drain(p->control.get(), p->id, reason) : Status::Ok();
  if (!s.ok()) spdlog::debug("worker {}: {}", p->id, s.message());  // as in send_command
  if (p->forked()) ::kill(p->pid, SIGTERM);                         // else started() sends it
}

void Arbiter::stop_hard(WorkerProcess* p) {
  if (p->kill_sent) return;
  p->state = WorkerState::kAborted;
  send_command(p, ControlType::kStop);
  if (p->forked()) ::kill(p->pid, SIGQUIT);
}

void Arbiter::kill_now(WorkerProcess* p) {
  if (p->kill_sent) return;
  p->state = WorkerState::kAborted;
  p->kill_sent = true;
  if (p->forked()) ::kill(p->pid, SIGKILL);
}

void Arbiter::send_command(WorkerProcess* p, ControlType type) {
  if (!p->control) return;
  // The worker may be gone or not reading: its exit or the deadline deals with it.
  if (Status s = send_control(p->control.get(), type, p->id); !s.ok()) {
    spdlog::debug("worker {}: {}", p->id, s.message());
  }
}

void Arbiter::close_control(WorkerProcess* p) {
  if (!p->control) return;
  ev_io_stop(loop_, &p->io);
  p->control.reset();
}

void Arbiter::boot_failed(WorkerProcess* p, int code) {
  if (exit_code_ == 0) exit_code_ = code;
  // The failing worker exits by itself; mark it so its exit is not taken for a crash.
  if (p->state != WorkerState::kExited) p->state = WorkerState::kAborted;
  spdlog::error("the first generation cannot start; stopping (exit status {})", code);
  on_event(Event::kBootFailed);
}

// --- reload ----------------------------------------------------------------------------------

void Arbiter::start_reload() {
  if (Status s = reload_.begin(target_workers_); !s.ok()) {
    fail_reload(s.message());  // back to kRunning
    return;
  }
  target_workers_ = std::max(1, cfg().server.workers);
  spdlog::info("starting generation {} ({} worker{})", reload_.generation(), target_workers_,
               target_workers_ == 1 ? "" : "s");
  for (int id = 1; id <= target_workers_; ++id) spawn(id);
}

void Arbiter::fail_reload(const std::string& reason) {
  spdlog::error("reload failed ({}); the previous generation keeps serving", reason);
  if (preload_) preload_->discard_booting();  // the old preload process keeps spawning
  if (std::optional<int> previous_target = reload_.rollback()) {
    target_workers_ = *previous_target;
    // Stop the new generation's workers that are not serving yet; their slots are still held
    // by old workers. Ready ones already replaced an old worker and stay. (Not when the new
    // generation never started: generation() then still names the serving one, whose
    // workers may be booting after a respawn.)
    for (WorkerProcess* p : table_.all()) {
      if (p->generation == reload_.generation() && p->state == WorkerState::kSpawned)
        drain(p, DrainReason::kRestart);
    }
  }
  if (state_ == MasterState::kReloading) on_event(Event::kReloadFailed);
}

}  // namespace aiowsgi::master
