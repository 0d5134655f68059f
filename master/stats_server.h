// StatsServer: the master's monitoring endpoints. [stats] listen serves one JSON document per
// connection in the layout of uWSGI's stats server; [stats] metrics serves Prometheus text at
// GET /metrics. Both are built from the Arbiter's worker table and the StatsBoard the workers
// write into, on the master's libev loop, so they answer while every worker is busy or
// reloading. Also owns the StatsBoard and hands each forked worker its slot.
// Master only; no Python.
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/stats_board.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "config/config.h"
#include "master/listeners.h"
#include "worker/worker.h"

namespace aiowsgi::master {

class Arbiter;
struct WorkerProcess;

// --- The documents, from a snapshot (pure: tests build snapshots by hand) ------------------

struct SocketView {
  std::string name;
  std::string proto;       // "http" | "uwsgi"
  uint64_t queue = 0;      // connections waiting in the kernel's accept queue
  uint64_t max_queue = 0;  // its limit (the listen backlog)
};

struct WorkerView {
  int id = 0;
  pid_t pid = 0;  // 0: the slot has no process right now (respawn back-off)
  bool accepting = false;
  int respawn_count = 0;
  double last_spawn = 0;  // unix time
  int cores = 0;          // configured cores of its generation
  const WorkerScore* score = nullptr;
  // The board's detailed core records per slot (StatsBoard::core_detail()): the bound for
  // reading |score|, which its worker can overwrite.
  uint32_t core_detail = 0;
  uint64_t rss = 0, vsz = 0;  // bytes
  uint64_t delta_requests = 0;
};

struct StatsSnapshot {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string cwd;
  double now = 0;  // unix time
  std::vector<SocketView> sockets;
  std::vector<WorkerView> workers;
  uint64_t listen_queue_errors = 0;
  uint64_t reloads = 0;
  ScoreTotals retired;  // counted by workers that are gone or not listed (draining)
};

// The uWSGI-layout stats document.
std::string stats_json(const StatsSnapshot& s);
// Prometheus text exposition format 0.0.4.
std::string metrics_text(const StatsSnapshot& s);
// |s| as a JSON string literal (quotes included); bytes >= 0x80 are taken as Latin-1.
std::string json_quote(std::string_view s);

enum class MetricsRoute { kIncomplete, kMetrics, kMetricsHead, kNotFound, kBadMethod, kBad };
// Routes the HTTP request whose first bytes are |head|: kIncomplete until the request line is
// complete.
MetricsRoute route_metrics_request(std::string_view head);

// Queue length and limit of a listening socket: TCP_INFO for TCP (a LISTEN socket reports
// its accept queue in tcpi_unacked and the backlog in tcpi_sacked); 0 for others.
void listen_queue(int fd, uint64_t* queue, uint64_t* max_queue);

// rss and vsz of |pid| in bytes from /proc/PID/statm; zeros when unreadable.
void read_memory(pid_t pid, uint64_t* rss, uint64_t* vsz);

// --- The server ------------------------------------------------------------------------------

class StatsServer {
 public:
  StatsServer(struct ev_loop* loop, const Arbiter& arbiter);
  ~StatsServer();
  StatsServer(const StatsServer&) = delete;
  StatsServer& operator=(const StatsServer&) = delete;
  StatsServer(StatsServer&&) = delete;
  StatsServer& operator=(StatsServer&&) = delete;

  // Maps the StatsBoard and binds [stats] listen / metrics (each optional). Called once
  // before the first fork; an Io/Config status names the address that failed.
  Status start(const config::Config& config);

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

  StatsSnapshot snapshot();

 private:
  struct Client;
  enum class Kind { kStats, kMetrics };
  struct Endpoint {
    Listener listener;
    Kind kind;
    ev_io io{};
    StatsServer* owner = nullptr;
  };

  static void accept_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void client_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void tick_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
  Status bind_endpoint(const std::string& address, Kind kind, int backlog);
  void on_accept(Endpoint* e);
  void on_client(Client* c, int revents);
  void start_writing(Client* c, std::string body);
  void close_client(Client* c);
  void on_tick();

  struct ev_loop* loop_;
  const Arbiter& arbiter_;
  StatsBoard board_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::unordered_map<const WorkerProcess*, int> slot_of_;
  std::unordered_map<pid_t, uint64_t> requests_at_tick_;  // for delta_requests
  std::unordered_map<pid_t, uint64_t> delta_requests_;
  uint64_t listen_queue_errors_ = 0;
  ev_timer tick_{};
};

}  // namespace aiowsgi::master
