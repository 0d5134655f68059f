// Arbiter: the master's supervision loop. It forks the workers, watches them (libev
// ev_child, one ev_io per control pipe, a 1 s tick) and turns signals into state changes:
// a pure next_state() decides the master's lifecycle, then every event runs the same
// maintenance pass (reap -> murder_stale -> recycle -> manage_count), as gunicorn's arbiter
// does. The policies (harakiri, reload_on_rss_mb) live in supervision.h; max_requests is
// counted by the worker, which reports kRetiring.
// Master only; no Python. Runs on libev's default loop (ev_child needs it).
#pragma once

#include <ev.h>

#include <memory>
#include <vector>

#include "config/config.h"
#include "master/listeners.h"
#include "master/supervision.h"
#include "master/worker_table.h"
#include "worker/worker.h"

namespace aiowsgi::master {

class StatsServer;
class FileWatcher;

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

// How long INT/QUIT leaves workers to exit after SIGQUIT before SIGKILL.
inline constexpr double kKillGraceSeconds = 1.5;

// The function a forked child runs (worker::run_worker in production). Its result is
// passed to _exit(); it must not return into the master's code by any other path.
using WorkerMain = int (*)(const worker::WorkerContext&) noexcept;

class Arbiter {
 public:
  // |listeners| are the bound listen sockets, now owned by the Arbiter: a reload binds the
  // addresses added to the file and closes the removed ones; the destructor removes the unix
  // socket files. |cli| is kept to re-read the configuration on HUP.
  Arbiter(struct ev_loop* loop, config::CommandLine cli,
          std::shared_ptr<const config::Config> config, std::vector<Listener> listeners,
          WorkerMain worker_main);
  ~Arbiter();
  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;
  Arbiter(Arbiter&&) = delete;
  Arbiter& operator=(Arbiter&&) = delete;

  // Starts the workers and runs the loop until every worker has exited after a stop.
  // Returns the master's exit status: kExitOk, or the worker's kExitAppLoadError /
  // kExitBootError when the first generation could not start. Call once.
  int run();
  // A master-only descriptor (the locked pidfile) that every forked worker closes at once.
  void close_in_workers(int fd) { close_in_workers_.push_back(fd); }

  MasterState state() const { return state_; }

  // Read-only views for the stats and metrics endpoints (master/stats_server.h).
  const WorkerTable& table() const { return table_; }
  const std::vector<std::shared_ptr<Listener>>& listeners() const { return listeners_; }
  const config::Config& config() const { return *config_; }
  int target_workers() const { return target_workers_; }
  int reloads() const { return generation_ - 1; }

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

  // Applies next_state, runs the entry action of a new state, then maintain().
  void on_event(Event e);
  void enter(MasterState from, MasterState to, Event e);
  // reap is done by libev (ev_child); then murder_stale -> manage_count -> lifecycle checks.
  void maintain();
  void murder_stale();
  void harakiri(WorkerProcess* p, HarakiriVerdict verdict, double now);
  void recycle();
  void manage_count();
  void arm_wakeup();

  void spawn(int id);
  [[noreturn]] void run_child(WorkerProcess* self, int worker_end) noexcept;
  void drain(WorkerProcess* p);
  void stop_hard(WorkerProcess* p);
  void kill_now(WorkerProcess* p);
  void close_control(WorkerProcess* p);
  void start_reload();
  void fail_reload(const std::string& reason);
  // Listener changes of a reload: bind the added addresses (false and logged when one cannot
  // be bound), then, once the reload is done, close the removed ones; or undo on failure.
  bool apply_listener_changes(const config::Config& fresh);
  void commit_listener_changes();
  void rollback_listener_changes();
  std::vector<worker::ListenSocket> worker_sockets() const;
  void boot_failed(WorkerProcess* p, int code);
  void reopen_logs();
  // HUP's reload, also run by [app] reload on a file change; |cause| starts the log line.
  void request_reload(const std::string& cause);

  struct ev_loop* loop_;
  config::CommandLine cli_;
  std::shared_ptr<const config::Config> config_;       // for new workers
  std::shared_ptr<const config::Config> prev_config_;  // restored when a reload fails
  // Shared so that a reload can build its new list from kept and new sockets, and restore
  // the previous one if it fails.
  std::vector<std::shared_ptr<Listener>> listeners_;
  std::vector<std::shared_ptr<Listener>> prev_listeners_;  // during a reload: to restore
  bool listeners_changing_ = false;  // a reload changed listeners_; prev_listeners_ is valid
  WorkerMain worker_main_;
  std::vector<int> close_in_workers_;
  uint64_t next_serial_ = 1;

  MasterState state_ = MasterState::kStarting;
  WorkerTable table_;
  int target_workers_ = 1;
  int prev_target_workers_ = 1;
  int generation_ = 1;
  bool hup_pending_ = false;
  int exit_code_ = 0;
  double stop_deadline_ = 0;  // kStopping: graceful_timeout passes
  double kill_deadline_ = 0;  // kKilling: SIGKILL whatever is left

  std::vector<std::unique_ptr<ev_signal>> signal_watchers_;
  ev_child child_watcher_{};
  ev_timer tick_{};                     // 0.5 s: heartbeats, harakiri, recycling, pending respawns
  ev_timer wakeup_{};                   // one-shot: the nearest deadline or respawn time
  std::unique_ptr<StatsServer> stats_;  // [stats] endpoints and the workers' StatsBoard
  std::unique_ptr<FileWatcher> file_watcher_;  // [app] reload: inotify on the app's files
};

}  // namespace aiowsgi::master
