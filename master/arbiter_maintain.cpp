// Arbiter's maintenance pass, run after every event (master/arbiter.h): deadlines and
// harakiri (murder_stale), reload_on_rss_mb and max_requests replacements (recycle), the
// worker count (manage_count), then the lifecycle checks that follow from the table and the
// wake-up timer for the nearest deadline. Master only; no Python.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "common/stats_board.h"
#include "master/arbiter.h"
#include "master/file_watcher.h"
#include "master/preload.h"
#include "master/proc_stats.h"
#include "master/stats_server.h"

namespace aiowsgi::master {
namespace {

// A worker's in-flight requests as its StatsBoard slot shows them; empty without a slot.
// The counts in it are the worker's to write: never more than the cores it was given.
ScoreView score_view(const StatsServer* stats, const WorkerProcess* p) {
  ScoreView v = stats ? stats->view_of(p) : ScoreView{};
  v.in_flight = std::min(v.in_flight, p->cores());
  return v;
}

}  // namespace

void Arbiter::maintain() {
  apply_fork_outcomes();  // before anything counts the slots that waited for them
  // [app] reload follows the configuration in force (cheap when unchanged).
  if (file_watcher_) file_watcher_->configure(cfg());
  murder_stale();
  recycle();
  ensure_preload();  // a preload process that died is replaced even when no worker is due
  manage_count();
  // Lifecycle checks that follow from the table, not from one event.
  if ((state_ == MasterState::kStopping || state_ == MasterState::kKilling) && table_.empty() &&
      (!preload_ || preload_->empty())) {
    on_event(Event::kAllExited);
    return;
  }
  if (state_ == MasterState::kReloading) {
    bool done = true;
    for (WorkerProcess* p : table_.all()) {
      if (p->active() &&
          (p->generation != reload_.generation() || p->state != WorkerState::kBooted)) {
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
  double harakiri_s = cfg().limits.harakiri;
  for (WorkerProcess* p : table_.all()) {
    if (p->kill_sent) continue;
    if (p->kill_at > 0) {
      // Harakiri is waiting for the stack it asked for; judged once, not again each tick.
      if (now >= p->kill_at) {
        spdlog::error("worker {} harakiri: killing pid {}", p->id, p->pid);
        kill_now(p);
      }
      continue;
    }
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
  // A preload process that ignores its SIGTERM (stopped, wedged) is killed here too.
  if (state_ == MasterState::kStopping && now >= stop_deadline_ &&
      (!table_.empty() || (preload_ && !preload_->empty()))) {
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
  // The worker writes the stack of the code running in it to the log (SIGUSR2: faulthandler
  // from the signal handler, which works while the loop is blocked) before it is killed.
  std::string killing = p->forked() ? fmt::format(
                                          "; its stack follows (SIGUSR2), then SIGKILL to pid {} "
                                          "in {:.0f} s",
                                          p->pid, kStackDumpSeconds)
                                    : std::string("; killing it");
  if (verdict == HarakiriVerdict::kLoopBlocked) {
    double silent = now - std::max(p->last_heartbeat_at, p->ready_at);
    if (!v.suspect.empty()) {
      spdlog::error(
          "worker {} harakiri: request stuck for {:.1f} s (blocking the loop): {}{}; no heartbeat "
          "for {:.1f} s{}{}",
          p->id, age, v.suspect, v.suspect_running ? "" : " (probably)", silent, others, killing);
    } else {
      spdlog::error(
          "worker {} harakiri: loop blocked for {:.1f} s with no request in flight (an app "
          "task blocks it){}",
          p->id, silent, killing);
    }
  } else {
    spdlog::error(
        "worker {} harakiri: request {} still running {:.1f} s after it started, past harakiri "
        "({} s) and not cancelled by the worker{}{}",
        p->id, v.suspect.empty() ? "(unknown)" : v.suspect, age, cfg().limits.harakiri, others,
        killing);
  }
  if (!p->forked()) {
    // kill_now marks it aborted, so its exit is expected and manage_count() fills the slot.
    kill_now(p);
    return;
  }
  ::kill(p->pid, SIGUSR2);
  // murder_stale() sends the SIGKILL; arm_wakeup() comes back for it on time.
  p->kill_at = now + kStackDumpSeconds;
}

// reload_on_rss_mb: the HUP path for one worker. A replacement boots beside the worker; its
// kReady drains the old one (on_message). At most max_concurrent_recycles() at a time, so
// workers crossing the limit together are not all replaced at once. Also retries the
// replacement of a worker retiring for max_requests (on_retiring) after a failed start.
void Arbiter::recycle() {
  if (state_ != MasterState::kRunning) return;
  const config::LimitsConfig& limits = cfg().limits;
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
    uint64_t rss = read_memory(p->pid).rss;
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
      drain(p, DrainReason::kRestart);  // the other workers serve on
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
    if (!p->kill_sent) consider(p->kill_at);
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

}  // namespace aiowsgi::master
