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
#include "master/stats_server.h"
#include "master/systemd.h"

namespace aiowsgi::master {
namespace {

uint64_t configured_cores(const WorkerProcess* p) {
  return static_cast<uint64_t>(std::max(1, p->config ? p->config->server.cores : 1));
}

// Every signal the master watches. The child resets exactly these (plus SIGCHLD, which
// ev_child owns) before anything else: it inherits libev's handlers, which would swallow
// them (NOTES.md "fork, signals, logging").
constexpr int kWatchedSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1};

// A worker's in-flight requests as its StatsBoard slot shows them; empty without a slot.
// The counts in it are the worker's to write: never more than the cores it was given.
ScoreView score_view(const StatsServer* stats, const WorkerProcess* p) {
  ScoreView v = stats ? stats->view_of(p) : ScoreView{};
  v.in_flight = std::min(v.in_flight, configured_cores(p));
  return v;
}

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

// --- construction and the loop ---------------------------------------------------------------

Arbiter::Arbiter(struct ev_loop* loop, config::CommandLine cli,
                 std::shared_ptr<const config::Config> config, std::vector<Listener> listeners,
                 WorkerMain worker_main)
    : loop_(loop), cli_(std::move(cli)), config_(std::move(config)), worker_main_(worker_main) {
  for (Listener& l : listeners) listeners_.push_back(std::make_shared<Listener>(std::move(l)));
  target_workers_ = std::max(1, config_->server.workers);
  prev_target_workers_ = target_workers_;
}

Arbiter::~Arbiter() {
  for (auto& w : signal_watchers_) ev_signal_stop(loop_, w.get());
  ev_child_stop(loop_, &child_watcher_);
  ev_timer_stop(loop_, &tick_);
  ev_timer_stop(loop_, &wakeup_);
  for (WorkerProcess* p : table_.all()) close_control(p);
  // Only the master destroys the Arbiter (children _exit), so the socket files are removed
  // once, by the process that created them.
  for (const auto& l : listeners_) remove_socket_file(*l);
  for (const auto& l : prev_listeners_) remove_socket_file(*l);
}

int Arbiter::run() {
  for (int sig : kWatchedSignals) {
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
  if (Status s = stats_->start(*config_); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitBindError;
  }
  // [app] reload: a change to a watched file runs the HUP reload (configured in maintain()).
  file_watcher_ = std::make_unique<FileWatcher>(loop_, [this](const std::string& path, size_t n) {
    request_reload(n > 1 ? fmt::format("{} changed ({} events)", path, n) : path + " changed");
  });
  maintain();  // spawns the first generation
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
  // Read what the worker said last (kAppLoadError, ...) before forgetting it: libev may run
  // this callback before the control pipe's, and closing the pipe would discard the message.
  if (WorkerProcess* live = table_.find(pid); live && live->control) on_control(live);
  std::unique_ptr<WorkerProcess> p = table_.remove(pid);
  if (p && stats_) stats_->on_exit(p.get());
  if (!p) {
    // Not one of ours: when the master runs as PID 1 (a container) orphans are re-parented
    // to it and libev reaps them for us. Nothing to do but not to complain loudly.
    spdlog::debug("reaped unknown child pid {} ({})", pid, describe_exit(status));
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
  if (state_ == MasterState::kReloading && p->generation == generation_ && !was_ready) {
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
          drain(old);
        }
      }
      on_event(Event::kWorkerReady);
      return;
    }
    case ControlType::kHeartbeat: {
      p->last_heartbeat = sanitized_heartbeat(m, configured_cores(p));
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
      } else if (state_ == MasterState::kReloading && p->generation == generation_ &&
                 p->ready_at == 0) {
        spdlog::error("worker {} (pid {}) {}", p->id, p->pid, startup_failure_text(code));
        fail_reload(std::string("a new worker ") + startup_failure_text(code));
      }
      // Otherwise the worker exits with |code| and is respawned with back-off.
      on_event(Event::kTick);
      return;
    }
    default:
      // Once per process: a worker sending garbage in a loop must not flood the log.
      if (!p->warned_unexpected) {
        p->warned_unexpected = true;
        spdlog::warn(
            "worker {} (pid {}) sent an unexpected control message ({}, type {}); "
            "ignoring it and any more",
            p->id, p->pid, control_type_name(m.type), static_cast<uint32_t>(m.type));
      }
      return;
  }
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
        commit_listener_changes();
        prev_config_.reset();
        spdlog::info("reload complete: generation {} serving", generation_);
      }
      return;
    case MasterState::kReloading:
      start_reload();
      return;
    case MasterState::kStopping: {
      double grace = config_->server.graceful_timeout;
      stop_deadline_ = now + grace;
      spdlog::info("stopping {} worker{} gracefully (up to {} s)", table_.size(),
                   table_.size() == 1 ? "" : "s", grace);
      for (WorkerProcess* p : table_.all()) {
        if (p->active()) drain(p);
        if (p->stop_deadline == 0 || stop_deadline_ < p->stop_deadline) {
          p->stop_deadline = stop_deadline_;
        }
      }
      return;
    }
    case MasterState::kKilling:
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

void Arbiter::maintain() {
  // [app] reload follows the configuration in force (cheap when unchanged).
  if (file_watcher_) file_watcher_->configure(*config_);
  murder_stale();
  recycle();
  manage_count();
  // Lifecycle checks that follow from the table, not from one event.
  if ((state_ == MasterState::kStopping || state_ == MasterState::kKilling) && table_.empty()) {
    on_event(Event::kAllExited);
    return;
  }
  if (state_ == MasterState::kReloading) {
    bool done = true;
    for (WorkerProcess* p : table_.all()) {
      if (p->active() && (p->generation != generation_ || p->state != WorkerState::kBooted)) {
        done = false;
      }
    }
    if (done) {
      on_event(Event::kReloadDone);
      return;
    }
  }
  if (state_ == MasterState::kRunning && hup_pending_) {
    bool booting = false;
    for (WorkerProcess* p : table_.all()) booting |= p->state == WorkerState::kSpawned;
    if (!booting) {
      hup_pending_ = false;
      spdlog::info("running the deferred reload");
      on_event(Event::kHup);
      return;
    }
  }
  arm_wakeup();
}

// Deadlines: harakiri (a blocked loop, a request the worker failed to cancel), a draining
// worker past its deadline, the stop timeout, the kill grace.
void Arbiter::murder_stale() {
  double now = ev_now(loop_);
  double harakiri_s = config_->limits.harakiri;
  for (WorkerProcess* p : table_.all()) {
    if (p->kill_sent) continue;
    if (harakiri_s > 0 && p->ready_at > 0 &&
        (p->state == WorkerState::kBooted || p->state == WorkerState::kDraining)) {
      HarakiriInput in;
      in.harakiri = harakiri_s;
      in.silent_for = now - std::max(p->last_heartbeat_at, p->ready_at);
      ScoreView v = score_view(stats_.get(), p);
      // Both clocks are CLOCK_MONOTONIC: the heartbeat's in (coarse) ms, the board's in ns.
      uint64_t oldest = v.oldest_ns;
      uint64_t beat_oldest = p->last_heartbeat.oldest_request_ms * 1000000u;
      if (beat_oldest > 0 && (oldest == 0 || beat_oldest < oldest)) oldest = beat_oldest;
      uint64_t mono = monotonic_ns();
      in.oldest_age = oldest > 0 && mono > oldest ? static_cast<double>(mono - oldest) / 1e9 : 0;
      // Both counts come from the worker: clamped (score_view, on_message) to its cores.
      in.in_flight = static_cast<int>(std::max(v.in_flight, p->last_heartbeat.busy_cores));
      if (HarakiriVerdict verdict = harakiri_verdict(in); verdict != HarakiriVerdict::kNone) {
        harakiri(p, verdict, now);
        continue;
      }
    }
    if (p->stop_deadline > 0 && now >= p->stop_deadline) {
      spdlog::warn("worker {} (pid {}) did not stop in time; sending SIGKILL", p->id, p->pid);
      kill_now(p);
    }
  }
  if (state_ == MasterState::kStopping && now >= stop_deadline_ && !table_.empty()) {
    on_event(Event::kGraceExpired);
    return;
  }
  if (state_ == MasterState::kKilling && kill_deadline_ > 0 && now >= kill_deadline_) {
    for (WorkerProcess* p : table_.all()) {
      if (!p->kill_sent) {
        spdlog::warn("worker {} (pid {}) still running; sending SIGKILL", p->id, p->pid);
        kill_now(p);
      }
    }
  }
}

void Arbiter::harakiri(WorkerProcess* p, HarakiriVerdict verdict, double now) {
  ScoreView v = score_view(stats_.get(), p);
  uint64_t mono = monotonic_ns();
  double age =
      v.suspect_ns > 0 && mono > v.suspect_ns ? static_cast<double>(mono - v.suspect_ns) / 1e9 : 0;
  // Past kMaxCoreDetail cores the board knows which core holds the loop but not its request.
  if (v.suspect.empty() && v.suspect_core >= 0) {
    v.suspect = "on core " + std::to_string(v.suspect_core);
  }
  std::string others;
  if (v.in_flight > 1) {
    others = "; " + std::to_string(v.in_flight - 1) + " other request" +
             (v.in_flight == 2 ? "" : "s") + " in flight fail with it";
  }
  if (verdict == HarakiriVerdict::kLoopBlocked) {
    double silent = now - std::max(p->last_heartbeat_at, p->ready_at);
    if (!v.suspect.empty()) {
      spdlog::error(
          "worker {} harakiri: request stuck for {:.1f} s (blocking the loop): {}{}; no heartbeat "
          "for {:.1f} s, killing pid {}{}",
          p->id, age, v.suspect, v.suspect_running ? "" : " (probably)", silent, p->pid, others);
    } else {
      spdlog::error(
          "worker {} harakiri: loop blocked for {:.1f} s with no request in flight (an app "
          "task blocks it); killing pid {}",
          p->id, silent, p->pid);
    }
  } else {
    spdlog::error(
        "worker {} harakiri: request {} still running {:.1f} s after it started, past harakiri "
        "({} s) and not cancelled by the worker; killing pid {}{}",
        p->id, v.suspect.empty() ? "(unknown)" : v.suspect, age, config_->limits.harakiri, p->pid,
        others);
  }
  // kill_now marks it aborted, so its exit is expected and manage_count() fills the slot.
  kill_now(p);
}

// reload_on_rss_mb: the HUP path for one worker. A replacement boots beside the worker; its
// kReady drains the old one (on_message). At most max_concurrent_recycles() at a time, so
// workers crossing the limit together are not all replaced at once. Also retries the
// replacement of a worker retiring for max_requests (on_retiring) after a failed start.
void Arbiter::recycle() {
  if (state_ != MasterState::kRunning) return;
  const config::LimitsConfig& limits = config_->limits;
  double now = ev_now(loop_);
  int in_progress = 0;
  for (WorkerProcess* p : table_.all()) {
    if (!p->retiring || !p->active()) continue;
    ++in_progress;
    // The replacement died before it was ready (on_child set a back-off): try again.
    if (!table_.has_replacement(p) && now >= table_.slot(p->id).next_spawn_at) spawn(p->id);
  }
  // max_requests is not judged here: the worker reports it (on_retiring).
  if (limits.reload_on_rss_mb <= 0) return;
  for (WorkerProcess* p : table_.all()) {
    if (in_progress >= max_concurrent_recycles(target_workers_)) return;
    if (p->state != WorkerState::kBooted || p->retiring || p->id > target_workers_) continue;
    uint64_t rss = read_rss_bytes(p->pid);
    if (recycle_reason(limits, rss) == RecycleReason::kNone) continue;
    if (now < table_.slot(p->id).next_spawn_at) continue;
    p->retiring = true;
    ++in_progress;
    spdlog::info("worker {} (pid {}) uses {} MB (reload_on_rss_mb {}); starting a replacement",
                 p->id, p->pid, rss / (1024 * 1024), limits.reload_on_rss_mb);
    spawn(p->id);
  }
}

void Arbiter::manage_count() {
  if (state_ != MasterState::kStarting && state_ != MasterState::kRunning &&
      state_ != MasterState::kReloading) {
    return;
  }
  for (WorkerProcess* p : table_.all()) {
    if (p->active() && p->id > target_workers_) {
      spdlog::info("worker {} (pid {}) no longer needed; draining", p->id, p->pid);
      drain(p);
    }
  }
  double now = ev_now(loop_);
  for (int id = 1; id <= target_workers_; ++id) {
    if (table_.active(id) != nullptr) continue;
    if (now < table_.slot(id).next_spawn_at) continue;  // back-off; arm_wakeup() comes back
    spawn(id);
  }
}

void Arbiter::arm_wakeup() {
  ev_timer_stop(loop_, &wakeup_);
  if (state_ == MasterState::kDone) return;
  double now = ev_now(loop_);
  double next = 0;
  auto consider = [&](double t) {
    if (t > 0 && (next == 0 || t < next)) next = t;
  };
  for (WorkerProcess* p : table_.all()) {
    if (!p->kill_sent) consider(p->stop_deadline);
  }
  if (state_ == MasterState::kStopping) consider(stop_deadline_);
  if (state_ == MasterState::kKilling) consider(kill_deadline_);
  if (state_ == MasterState::kStarting || state_ == MasterState::kRunning ||
      state_ == MasterState::kReloading) {
    for (int id = 1; id <= target_workers_; ++id) {
      if (table_.active(id) == nullptr) consider(table_.slot(id).next_spawn_at);
    }
  }
  if (next == 0) return;
  // A little past the deadline, so the comparison against ev_now() in the callback holds.
  ev_timer_set(&wakeup_, std::max(0.001, next - now + 0.001), 0.0);
  ev_timer_start(loop_, &wakeup_);
}

// --- processes -------------------------------------------------------------------------------

void Arbiter::spawn(int id) {
  UniqueFd master_end;
  UniqueFd worker_end;
  WorkerSlot& slot = table_.slot(id);
  double now = ev_now(loop_);
  if (Status s = make_control_pair(&master_end, &worker_end); !s.ok()) {
    spdlog::error("cannot start worker {}: {}", id, s.message());
    slot.backoff = next_backoff(slot.backoff, 0);
    slot.next_spawn_at = now + slot.backoff;
    return;
  }
  auto proc = std::make_unique<WorkerProcess>();
  proc->id = id;
  proc->generation = generation_;
  proc->serial = next_serial_++;
  proc->spawned_at = now;
  proc->config = config_;
  proc->control = std::move(master_end);
  WorkerProcess* p = table_.add(std::move(proc));
  if (stats_) stats_->on_spawn(p);

  // A line still buffered in a sink would otherwise be written by both processes.
  log::flush();
  pid_t pid = ::fork();
  if (pid == 0) run_child(p, worker_end.release());
  if (pid < 0) {
    int err = errno;
    if (stats_) stats_->on_exit(p);
    table_.remove(-1);
    spdlog::error("cannot start worker {}: fork: {}", id, errno_string(err));
    slot.backoff = next_backoff(slot.backoff, 0);
    slot.next_spawn_at = now + slot.backoff;
    return;
  }
  p->pid = pid;
  if (slot.last_spawn > 0) ++slot.respawn_count;
  slot.last_spawn = now;
  ev_io_init(&p->io, &Arbiter::control_cb, p->control.get(), EV_READ);
  p->io.data = p;
  p->owner = this;
  ev_io_start(loop_, &p->io);
  spdlog::info("worker {} started, pid {}", id, pid);
}

void Arbiter::run_child(WorkerProcess* self, int worker_end) noexcept {
  // Order matters (NOTES.md): the handlers libev installed would swallow these signals and
  // write into a pipe shared with the master; reset them, unblock the mask, then drop the
  // inherited loop (its epoll instance is shared with the master) without ever running it.
  for (int sig : kWatchedSignals) ::signal(sig, SIG_DFL);
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  ev_loop_destroy(loop_);

  // The master ends of every control pipe, ours included, are master-only.
  for (WorkerProcess* p : table_.all()) {
    if (p->control) ::close(p->control.release());
  }
  // A listener a reload is removing must not stay open in the new generation, or it would
  // keep accepting connections into a queue nobody serves after the master closes it.
  for (const auto& l : prev_listeners_) {
    if (std::find(listeners_.begin(), listeners_.end(), l) == listeners_.end() && l->fd) {
      ::close(l->fd.release());
    }
  }
  int code = kExitBootError;
  try {
    log::set_process_name("worker " + std::to_string(self->id));
    worker::WorkerContext ctx;
    ctx.config = self->config.get();
    ctx.worker_id = self->id;
    ctx.num_workers = target_workers_;
    ctx.sockets = worker_sockets();
    ctx.control_fd = worker_end;
    ctx.close_fds = close_in_workers_;
    if (file_watcher_ && file_watcher_->fd() >= 0) ctx.close_fds.push_back(file_watcher_->fd());
    if (stats_) {
      ctx.score = stats_->score_for_child(self);
      ctx.board = stats_->board_for_child(self);
      for (int fd : stats_->master_fds()) ctx.close_fds.push_back(fd);
    }
    code = worker_main_(ctx);
  } catch (...) {
    code = kExitBootError;
  }
  ::_exit(code);
}

void Arbiter::drain(WorkerProcess* p) {
  if (!p->active()) return;
  p->state = WorkerState::kDraining;
  p->stop_deadline = ev_now(loop_) + config_->server.graceful_timeout;
  if (p->control) {
    ControlMessage m;
    m.type = ControlType::kDrain;
    m.worker_id = static_cast<uint32_t>(p->id);
    if (Status s = send_message(p->control.get(), m); !s.ok()) {
      spdlog::debug("worker {}: {}", p->id, s.message());
    }
  }
  ::kill(p->pid, SIGTERM);
}

void Arbiter::stop_hard(WorkerProcess* p) {
  if (p->kill_sent) return;
  p->state = WorkerState::kAborted;
  if (p->control) {
    ControlMessage m;
    m.type = ControlType::kStop;
    m.worker_id = static_cast<uint32_t>(p->id);
    if (Status s = send_message(p->control.get(), m); !s.ok()) {
      spdlog::debug("worker {}: {}", p->id, s.message());
    }
  }
  ::kill(p->pid, SIGQUIT);
}

void Arbiter::kill_now(WorkerProcess* p) {
  if (p->kill_sent) return;
  p->state = WorkerState::kAborted;
  p->kill_sent = true;
  ::kill(p->pid, SIGKILL);
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
  config::Config fresh;
  std::vector<std::string> errors;
  spdlog::info("re-reading the configuration{}",
               cli_.config_file.empty() ? "" : " from " + cli_.config_file);
  prev_config_.reset();
  if (!config::load_config(cli_, &fresh, &errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    fail_reload("configuration errors");  // back to kRunning
    return;
  }
  if (!apply_listener_changes(fresh)) {
    fail_reload("a new listen address could not be bound");
    return;
  }
  if (fresh.log.file != config_->log.file) {
    spdlog::warn("log.file changed: restart the master to apply");
  }
  if (fresh.server.user != config_->server.user || fresh.server.group != config_->server.group) {
    spdlog::warn(
        "server.user/group changed: privileges were dropped at start-up; restart the "
        "master to apply");
  }
  if (fresh.server.pidfile != config_->server.pidfile) {
    spdlog::warn("server.pidfile changed: restart the master to apply");
  }
  if (!log::set_level(fresh.log.level)) spdlog::warn("unknown log level '{}'", fresh.log.level);
  prev_config_ = config_;
  prev_target_workers_ = target_workers_;
  config_ = std::make_shared<const config::Config>(std::move(fresh));
  target_workers_ = std::max(1, config_->server.workers);
  ++generation_;
  spdlog::info("starting generation {} ({} worker{})", generation_, target_workers_,
               target_workers_ == 1 ? "" : "s");
  for (int id = 1; id <= target_workers_; ++id) spawn(id);
}

void Arbiter::fail_reload(const std::string& reason) {
  spdlog::error("reload failed ({}); the previous generation keeps serving", reason);
  rollback_listener_changes();
  // prev_config_ is set only once a new generation was started (the config was valid).
  if (prev_config_) {
    config_ = prev_config_;
    prev_config_.reset();
    target_workers_ = prev_target_workers_;
    log::set_level(config_->log.level);
    // Stop the new generation's workers that are not serving yet; their slots are still held
    // by old workers. Ready ones already replaced an old worker and stay. (Not when the new
    // generation never started: generation_ then still names the serving one, whose workers
    // may be booting after a respawn.)
    for (WorkerProcess* p : table_.all()) {
      if (p->generation == generation_ && p->state == WorkerState::kSpawned) drain(p);
    }
  }
  if (state_ == MasterState::kReloading) on_event(Event::kReloadFailed);
}

bool Arbiter::apply_listener_changes(const config::Config& fresh) {
  struct Wanted {
    std::string text;
    bool uwsgi;
  };
  std::vector<Wanted> wanted;
  for (const std::string& t : fresh.server.listen) wanted.push_back({t, false});
  for (const std::string& t : fresh.server.uwsgi_listen) wanted.push_back({t, true});
  BindOptions options;
  options.backlog = fresh.server.backlog;
  options.reuse_port = fresh.server.reuse_port;

  std::vector<std::shared_ptr<Listener>> next;
  std::vector<std::shared_ptr<Listener>> added;
  for (const Wanted& w : wanted) {
    SocketAddress address;
    if (Status s = parse_address(w.text, &address); !s.ok()) {
      spdlog::error("cannot bind {}: {}", w.text, s.message());
      for (const auto& l : added) remove_socket_file(*l);
      return false;
    }
    auto kept = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& l) {
      return l->name == address.text && l->uwsgi == w.uwsgi;
    });
    if (kept != listeners_.end()) {
      if (std::find(next.begin(), next.end(), *kept) == next.end()) next.push_back(*kept);
      continue;
    }
    auto l = std::make_shared<Listener>();
    if (Status s = bind_listener(address, options, l.get()); !s.ok()) {
      spdlog::error("{}", s.message());
      for (const auto& a : added) remove_socket_file(*a);
      return false;
    }
    l->uwsgi = w.uwsgi;
    added.push_back(l);
    next.push_back(l);
  }
  // The backlog of a listening socket can be changed in place; SO_REUSEPORT cannot (it
  // matters at bind time), so it applies to newly bound addresses only.
  if (fresh.server.backlog != config_->server.backlog) {
    for (const auto& l : next) {
      if (std::find(added.begin(), added.end(), l) != added.end()) continue;
      if (::listen(l->fd.get(), fresh.server.backlog) != 0) {
        spdlog::warn("cannot change the backlog of {}: {}", l->bound_name, errno_string(errno));
      }
    }
    spdlog::info("listen backlog {} -> {}", config_->server.backlog, fresh.server.backlog);
  }
  if (fresh.server.reuse_port != config_->server.reuse_port) {
    spdlog::warn(
        "server.reuse_port changed: applies to newly bound addresses only; restart the "
        "master to apply it to the others");
  }
  bool removed = std::any_of(listeners_.begin(), listeners_.end(), [&](const auto& l) {
    return std::find(next.begin(), next.end(), l) == next.end();
  });
  if (added.empty() && !removed && next.size() == listeners_.size()) {
    listeners_ = std::move(next);  // same sockets, possibly reordered
    return true;
  }
  for (const auto& l : added) {
    spdlog::info("listening on {} ({})", l->bound_name, l->uwsgi ? "uwsgi" : "http");
  }
  for (const auto& l : listeners_) {
    if (std::find(next.begin(), next.end(), l) == next.end()) {
      spdlog::info("{} is no longer in the configuration; it closes once the reload completes",
                   l->bound_name);
    }
  }
  prev_listeners_ = std::move(listeners_);
  listeners_ = std::move(next);
  listeners_changing_ = true;
  return true;
}

void Arbiter::commit_listener_changes() {
  if (!listeners_changing_) return;
  for (const auto& l : prev_listeners_) {
    if (std::find(listeners_.begin(), listeners_.end(), l) != listeners_.end()) continue;
    // The old workers still hold their copies while they drain (they no longer accept).
    spdlog::info("closed listener {} (removed from the configuration)", l->bound_name);
    remove_socket_file(*l);
  }
  prev_listeners_.clear();
  listeners_changing_ = false;
}

void Arbiter::rollback_listener_changes() {
  if (!listeners_changing_) return;
  for (const auto& l : listeners_) {
    if (std::find(prev_listeners_.begin(), prev_listeners_.end(), l) != prev_listeners_.end()) {
      continue;
    }
    spdlog::info("closed new listener {} (the reload failed)", l->bound_name);
    remove_socket_file(*l);
  }
  listeners_ = std::move(prev_listeners_);
  prev_listeners_.clear();
  listeners_changing_ = false;
}

std::vector<worker::ListenSocket> Arbiter::worker_sockets() const {
  std::vector<worker::ListenSocket> out;
  out.reserve(listeners_.size());
  for (const auto& l : listeners_) {
    worker::ListenSocket ls;
    ls.fd = l->fd.get();
    ls.name = l->name;
    ls.uwsgi = l->uwsgi;
    out.push_back(std::move(ls));
  }
  return out;
}

void Arbiter::reopen_logs() {
  Status s = log::reopen();
  if (s.ok()) {
    spdlog::info("SIGUSR1: log files reopened");
  } else {
    spdlog::error("SIGUSR1: {}", s.message());
  }
  for (WorkerProcess* p : table_.all()) {
    if (!p->control) continue;
    ControlMessage m;
    m.type = ControlType::kReopenLogs;
    m.worker_id = static_cast<uint32_t>(p->id);
    if (Status st = send_message(p->control.get(), m); !st.ok()) {
      spdlog::debug("worker {}: {}", p->id, st.message());
    }
  }
}

}  // namespace aiowsgi::master
