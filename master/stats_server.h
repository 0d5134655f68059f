// StatsServer: the master's monitoring. It owns the StatsBoard the workers write into (and
// hands each forked worker its slot), takes snapshots of the Arbiter's worker table and the
// board, renders them (stats_document.h) and serves them on [stats] listen and [stats]
// metrics (stats_http.h). On the master's libev loop, so it answers while every worker is
// busy or reloading. Master only; no Python.
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/stats_board.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "config/config.h"
#include "master/stats_document.h"
#include "master/stats_http.h"

namespace aiowsgi::master {

class Arbiter;
struct WorkerProcess;

// --- The server ------------------------------------------------------------------------------

class StatsServer {
 public:
  StatsServer(struct ev_loop* loop, const Arbiter& arbiter);
  ~StatsServer();
  StatsServer(const StatsServer&) = delete;
  StatsServer& operator=(const StatsServer&) = delete;
  StatsServer(StatsServer&&) = delete;
  StatsServer& operator=(StatsServer&&) = delete;

  // Maps the StatsBoard and binds [stats] listen / metrics (each optional). An address one
  // of |inherited| (the old master's sockets in an upgrade) is bound to is served on that
  // socket instead; the inherited sockets no address claims are closed. Called once before
  // the first fork; an Io/Config status names the address that failed.
  Status start(const config::Config& config, std::vector<UniqueFd> inherited = {});

  // Worker bookkeeping, called by the Arbiter: before fork (claims a slot), in the child
  // (the slot to write to; a private one when the board is full) and once the process is
  // reaped (or the fork failed).
  void on_spawn(const WorkerProcess* p);
  WorkerScore* score_for_child(const WorkerProcess* p);
  // The board holding that slot, where the child reads its peers' load; nullptr when it has
  // a private slot.
  const StatsBoard* board_for_child(const WorkerProcess* p) const;
  void on_exit(const WorkerProcess* p);
  // The slot process |p| writes to, for the master's harakiri; nullptr when it has none.
  const WorkerScore* score_of(const WorkerProcess* p) const;
  // What p's slot shows of its in-flight requests, read within the board's bounds; empty
  // without a slot.
  ScoreView view_of(const WorkerProcess* p) const;

  // The fds the workers must not inherit (closed in the child).
  std::vector<int> master_fds() const;
  // The [stats] listening sockets, which an upgrade passes to the new master.
  std::vector<int> listen_fds() const { return http_.listen_fds(); }
  // The new master serves them now: this one stops answering there (StatsHttp::hand_over).
  void hand_over() { http_.hand_over(); }

  StatsSnapshot snapshot();

 private:
  static void tick_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
  void on_tick();

  struct ev_loop* loop_;
  const Arbiter& arbiter_;
  StatsBoard board_;
  StatsHttp http_;
  std::unordered_map<const WorkerProcess*, int> slot_of_;
  std::unordered_map<pid_t, uint64_t> requests_at_tick_;  // for delta_requests
  std::unordered_map<pid_t, uint64_t> delta_requests_;
  uint64_t listen_queue_errors_ = 0;
  ev_timer tick_{};
};

}  // namespace aiowsgi::master
