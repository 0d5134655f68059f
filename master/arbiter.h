// Arbiter: the master's supervision loop. It forks the workers, watches them (libev
// ev_child, one ev_io per control pipe, a 0.5 s tick) and turns signals into state changes:
// a pure next_state() decides the master's lifecycle, then every event runs the same
// maintenance pass (reap -> murder_stale -> recycle -> manage_count), as gunicorn's arbiter
// does (libev's ev_child has reaped by then). The policies (harakiri, reload_on_rss_mb) live
// in supervision.h; max_requests is counted by the worker, which reports kRetiring. The
// lifecycle is lifecycle.h, forking spawner.h, configuration generations reload.h; the
// maintenance pass is in arbiter_maintain.cpp.
// Master only; no Python. Runs on libev's default loop (ev_child needs it).
#pragma once

#include <ev.h>

#include <functional>
#include <memory>
#include <vector>

#include "common/unique_fd.h"
#include "common/worker_context.h"
#include "config/config.h"
#include "master/lifecycle.h"
#include "master/listener_set.h"
#include "master/reload.h"
#include "master/spawner.h"
#include "master/supervision.h"
#include "master/worker_table.h"

namespace aiowsgi::master {

class StatsServer;
class Preloader;
class FileWatcher;
class Upgrader;

// How long INT/QUIT leaves workers to exit after SIGQUIT before SIGKILL.
inline constexpr double kKillGraceSeconds = 1.5;

class Arbiter {
 public:
  // |listeners| are the bound listen sockets, now owned by the Arbiter: a reload binds the
  // addresses added to the file and closes the removed ones; the destructor removes the unix
  // socket files. |cli| is kept to re-read the configuration on HUP. Every worker runs
  // |worker_main| in its forked child; with [server] preload, a generation's preload process
  // runs |preload_main| (its control_fd is the preload channel) and forks the workers.
  Arbiter(struct ev_loop* loop, config::CommandLine cli,
          std::shared_ptr<const config::Config> config, ListenerSet listeners,
          WorkerMain worker_main, WorkerMain preload_main = nullptr);
  ~Arbiter();
  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;
  Arbiter(Arbiter&&) = delete;
  Arbiter& operator=(Arbiter&&) = delete;

  // Starts the workers and runs the loop until every worker has exited after a stop.
  // Returns the master's exit status: kExitOk, or the worker's kExitAppLoadError /
  // kExitBootError when the first generation could not start. Call once.
  int run();
  // The [stats] sockets an upgrade passed from the old master (take_inherited_stats_fds),
  // served instead of binding their addresses again. Before run().
  void adopt_stats_sockets(std::vector<UniqueFd> fds) { inherited_stats_ = std::move(fds); }
  // A master-only descriptor (the locked pidfile) that every forked worker closes at once.
  void close_in_workers(int fd) { spawner_.close_in_workers(fd); }

  MasterState state() const { return state_; }
  // USR2 upgrades (master/upgrade.h): |on_serving| runs once all the first generation's workers are
  // ready (a new master then tells the old one); |on_handover| once a new master has taken over
  // (this one unlocks its pidfile before it drains).
  void set_upgrade_hooks(std::function<void()> on_serving, std::function<void()> on_handover);

  // Read-only views for the stats and metrics endpoints (master/stats_server.h).
  const WorkerTable& table() const { return table_; }
  const ListenerSet::Listeners& listeners() const { return reload_.listeners().current(); }
  const config::Config& config() const { return *reload_.config(); }
  int target_workers() const { return target_workers_; }
  int reloads() const { return reload_.generation() - 1; }

 private:
  static void signal_cb(struct ev_loop* loop, ev_signal* w, int revents) noexcept;
  static void child_cb(struct ev_loop* loop, ev_child* w, int revents) noexcept;
  static void control_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void timer_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;

  void on_signal(int signo);
  void on_child(pid_t pid, int status);
  void on_control(WorkerProcess* p);
  void on_message(WorkerProcess* p, const ControlMessage& m);
  void on_retiring(WorkerProcess* p, uint64_t requests);
  void warn_unexpected(WorkerProcess* p, const ControlMessage& m);

  // Applies next_state, runs the entry action of a new state, then maintain().
  void on_event(Event e);
  void enter(MasterState from, MasterState to, Event e);
  // After every event (libev's ev_child has reaped already): murder_stale -> recycle ->
  // manage_count, then the lifecycle checks that follow from the table (all exited, reload
  // done, a deferred HUP), then arm_wakeup().
  void maintain();
  void murder_stale();
  void harakiri(WorkerProcess* p, HarakiriVerdict verdict, double now);
  void recycle();
  void manage_count();
  void arm_wakeup();

  void spawn(int id);
  // |p|'s process runs as |pid|: watches its control pipe, and sends it the stop signal it
  // was due while its pid was unknown.
  void started(WorkerProcess* p, pid_t pid);
  // Ends a spawn that could not fork: the slot backs off before the next try.
  void spawn_failed(int id, const Status& why);
  // Asks |p| to finish its requests and exit (kDrain, then SIGTERM). |reason| tells its
  // websocket clients whether the service goes on (reconnect now) or stops.
  void drain(WorkerProcess* p, DrainReason reason);
  void stop_hard(WorkerProcess* p);
  void kill_now(WorkerProcess* p);
  void close_control(WorkerProcess* p);
  // Sends a command to p's worker over its control pipe, if it is still open.
  void send_command(WorkerProcess* p, ControlType type);
  void start_reload();
  void fail_reload(const std::string& reason);
  void boot_failed(WorkerProcess* p, int code);
  void reopen_logs();
  // USR2 (master/arbiter_signals.cpp): start_upgrade() execs the new master;
  // on_upgrade_exit() is true when |pid| was it.
  void start_upgrade();
  bool on_upgrade_exit(pid_t pid, int status);
  void hand_over(pid_t new_master);
  // Runs the on_serving hook once, when every worker of the first generation is ready.
  void announce_if_all_ready();
  // HUP's reload, also run by [app] reload on a file change; |cause| starts the log line.
  void request_reload(const std::string& cause);

  // [server] preload (master/arbiter_preload.cpp): workers come from the generation's
  // preload process. ensure_preload() starts the one the state needs if it is missing;
  // preload_gate() is true when spawn() may ask it for a worker now; request_preloaded()
  // asks (the pid comes later: -1 on success); apply_fork_outcomes() takes the answers.
  void ensure_preload();
  bool preload_gate();
  Result<pid_t> request_preloaded(WorkerProcess* p, int worker_end);
  void apply_fork_outcomes();
  // A reaped pid that no table entry had: perhaps a preloaded worker whose pid is on its way.
  void remember_unclaimed_exit(pid_t pid, int status);
  void on_preload_ready(bool booting);
  bool on_preload_exit(pid_t pid, int status);
  // Master-only fds every forked child closes first: control pipes, removed listeners, the
  // preload channels.
  std::vector<int> master_only_fds() const;

  const config::Config& cfg() const { return *reload_.config(); }

  struct ev_loop* loop_;
  Reload reload_;    // the serving configuration generation and its listen sockets
  Spawner spawner_;  // fork and child set-up
  uint64_t next_serial_ = 1;

  MasterState state_ = MasterState::kStarting;
  WorkerTable table_;
  int target_workers_ = 1;
  bool hup_pending_ = false;
  // USR2: the new master serves and this one stops; its workers drain as for a restart.
  bool handed_over_ = false;
  int exit_code_ = 0;
  double stop_deadline_ = 0;  // kStopping: graceful_timeout passes
  double kill_deadline_ = 0;  // kKilling: SIGKILL whatever is left

  std::vector<std::unique_ptr<ev_signal>> signal_watchers_;
  ev_child child_watcher_{};
  ev_timer tick_{};    // 0.5 s: heartbeat silence, harakiri, recycling, pending respawns
  ev_timer wakeup_{};  // one-shot: the nearest deadline or respawn time
  std::unique_ptr<StatsServer> stats_;         // [stats] endpoints and the workers' StatsBoard
  std::vector<UniqueFd> inherited_stats_;      // until stats_ adopts them in run()
  std::unique_ptr<FileWatcher> file_watcher_;  // [app] reload: inotify on the app's files
  WorkerMain preload_main_;                    // what a preload process runs
  std::unique_ptr<Preloader> preload_;         // [server] preload: the preload processes
  double preload_backoff_ = 0;                 // next_backoff() of the serving preload process
  double preload_retry_at_ = 0;                // no new serving preload process before this
  struct UnclaimedExit {
    pid_t pid;
    int status;
  };
  std::vector<UnclaimedExit> unclaimed_exits_;  // newest last, a few at most
  std::unique_ptr<Upgrader> upgrader_;          // USR2: the new master being started
  std::function<void()> on_serving_;
  std::function<void()> on_handover_;
};

}  // namespace aiowsgi::master
