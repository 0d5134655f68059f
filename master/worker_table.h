// WorkerTable: the master's record of its worker processes (one entry per forked pid, with
// its control pipe and last heartbeat) and of its worker slots (ids 1..N, with the respawn
// back-off that survives the processes filling them). During a reload two processes may
// hold the same id: the old one draining, the new one booting. Master only; no Python.
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "common/control.h"
#include "common/unique_fd.h"
#include "config/config.h"

namespace aiowsgi::master {

enum class WorkerState {
  kSpawned,   // forked; has not reported kReady yet
  kBooted,    // reported kReady: serving
  kDraining,  // asked to stop gracefully (kDrain + SIGTERM); its exit is expected
  kAborted,   // stopped hard (SIGQUIT/SIGKILL) or failed to boot; its exit is expected
  kExited,    // reaped; the entry is about to be removed
};

inline const char* worker_state_name(WorkerState s) {
  switch (s) {
    case WorkerState::kSpawned:
      return "spawned";
    case WorkerState::kBooted:
      return "booted";
    case WorkerState::kDraining:
      return "draining";
    case WorkerState::kAborted:
      return "aborted";
    case WorkerState::kExited:
      return "exited";
  }
  return "unknown";
}

// Respawn back-off. A worker that lived less than kQuickDeathSeconds probably dies at
// start-up (bad code path, missing resource): wait before the next try, doubling the wait
// each time up to kMaxBackoffSeconds, so a crash loop does not eat the machine. A worker
// that lived longer is replaced at once and the back-off starts over.
inline constexpr double kQuickDeathSeconds = 1.0;
inline constexpr double kFirstBackoffSeconds = 0.5;
inline constexpr double kMaxBackoffSeconds = 10.0;

// The delay before respawning a worker that lived |lived_seconds|, given the delay used
// for the previous respawn of the same slot (0 after a normal life). Pure.
inline double next_backoff(double previous_delay, double lived_seconds) {
  if (lived_seconds >= kQuickDeathSeconds) return 0;
  if (previous_delay <= 0) return kFirstBackoffSeconds;
  return std::min(previous_delay * 2, kMaxBackoffSeconds);
}

// One forked worker process. Owned by the table; its address is stable (libev keeps a
// pointer to |io|).
struct WorkerProcess {
  int id = 0;  // 1-based slot id
  // -1 until known: with [server] preload the preload process forks the worker and tells
  // its pid later. Never signal a process without checking forked().
  pid_t pid = -1;
  int generation = 0;   // bumped by each reload
  uint64_t serial = 0;  // fork order: of two processes holding one id, the newer has the larger
  WorkerState state = WorkerState::kSpawned;
  double spawned_at = 0;     // ev_now() at fork
  double ready_at = 0;       // ev_now() at kReady, 0 before
  double stop_deadline = 0;  // SIGKILL when this passes (draining), 0 = none
  bool kill_sent = false;    // SIGKILL already sent
  int reported_error = 0;    // kExitAppLoadError / kExitBootError when the worker said so
  UniqueFd control;          // master end of the control socketpair (-1 once the peer closed)
  ev_io io{};                // watches |control|; io.data = this entry
  void* owner = nullptr;     // the Arbiter, for the libev callback
  std::shared_ptr<const config::Config> config;  // the generation's config the child got
  ControlMessage last_heartbeat{};               // latest counters from the worker
  double last_heartbeat_at = 0;
  // reload_on_rss_mb: a replacement is booting into this worker's id; the worker keeps
  // serving until the replacement reports kReady, then drains. max_requests (kRetiring): the
  // worker has stopped accepting already and exits by itself once its requests are done.
  bool retiring = false;
  bool warned_unexpected = false;  // logged one unexpected control message already
  // Harakiri asked the worker for the stack of the code holding it (SIGUSR2): SIGKILL once
  // this passes (ev_now()); 0 = not asked.
  double kill_at = 0;

  // The cores its generation configured: the most requests it may report in flight.
  uint64_t cores() const {
    return static_cast<uint64_t>(std::max(1, config ? config->server.cores : 1));
  }
  bool forked() const { return pid > 0; }
  // Alive and not asked to stop: counts towards the slot's worker.
  bool active() const { return state == WorkerState::kSpawned || state == WorkerState::kBooted; }
};

// A worker id and what the next spawn into it must respect.
struct WorkerSlot {
  int respawn_count = 0;     // processes spawned into this slot after the first
  double backoff = 0;        // delay used for the last respawn (next_backoff input)
  double next_spawn_at = 0;  // ev_now() before which no process may be spawned here
  double last_spawn = 0;     // ev_now() of the latest fork into this slot
};

class WorkerTable {
 public:
  WorkerProcess* add(std::unique_ptr<WorkerProcess> p) {
    procs_.push_back(std::move(p));
    return procs_.back().get();
  }
  // Removes and returns the entry for |pid| (nullptr when unknown).
  std::unique_ptr<WorkerProcess> remove(pid_t pid) {
    for (auto it = procs_.begin(); it != procs_.end(); ++it) {
      if ((*it)->pid == pid) {
        std::unique_ptr<WorkerProcess> p = std::move(*it);
        procs_.erase(it);
        return p;
      }
    }
    return nullptr;
  }
  // Removes and returns |p| itself: entries still waiting for their pid all have pid -1.
  std::unique_ptr<WorkerProcess> remove_entry(const WorkerProcess* p) {
    for (auto it = procs_.begin(); it != procs_.end(); ++it) {
      if (it->get() == p) {
        std::unique_ptr<WorkerProcess> q = std::move(*it);
        procs_.erase(it);
        return q;
      }
    }
    return nullptr;
  }
  WorkerProcess* find_serial(uint64_t serial) const {
    for (const auto& p : procs_) {
      if (p->serial == serial) return p.get();
    }
    return nullptr;
  }
  WorkerProcess* find(pid_t pid) const {
    for (const auto& p : procs_) {
      if (p->pid == pid) return p.get();
    }
    return nullptr;
  }
  // The process currently filling slot |id| (spawned or booted), preferring the newest
  // generation, then the latest fork (a recycle's replacement over the worker it replaces).
  WorkerProcess* active(int id) const {
    WorkerProcess* best = nullptr;
    for (const auto& p : procs_) {
      if (p->id != id || !p->active()) continue;
      if (!best || p->generation > best->generation ||
          (p->generation == best->generation && p->serial > best->serial)) {
        best = p.get();
      }
    }
    return best;
  }
  // Whether a process newer than |p| holds p's id and is alive (booting or serving).
  bool has_replacement(const WorkerProcess* p) const {
    for (const auto& q : procs_) {
      if (q.get() != p && q->id == p->id && q->active() && q->serial > p->serial) return true;
    }
    return false;
  }
  // Snapshot of the live entries: callers may add or drain entries while iterating it.
  std::vector<WorkerProcess*> all() const {
    std::vector<WorkerProcess*> v;
    v.reserve(procs_.size());
    for (const auto& p : procs_) v.push_back(p.get());
    return v;
  }
  bool empty() const { return procs_.empty(); }
  size_t size() const { return procs_.size(); }

  WorkerSlot& slot(int id) { return slots_[id]; }
  // Slot |id| without creating it (nullptr when never used); for the stats endpoints.
  const WorkerSlot* find_slot(int id) const {
    auto it = slots_.find(id);
    return it == slots_.end() ? nullptr : &it->second;
  }

 private:
  std::vector<std::unique_ptr<WorkerProcess>> procs_;
  std::map<int, WorkerSlot> slots_;
};

}  // namespace aiowsgi::master
