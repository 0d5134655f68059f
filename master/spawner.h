// Spawner: forks one worker process and prepares the child before any worker code runs:
// the master's signal handlers and mask are reset, its event loop dropped, its private fds
// closed; then the worker function runs and its result goes to _exit(). The master decides
// what the child gets (ChildSetup); this file only knows how a child starts.
// Master only; no Python (the worker function embeds it, in the child).
#pragma once

#include <ev.h>
#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/worker_context.h"

namespace aiowsgi::master {

// Every signal the master watches (the Arbiter's ev_signal watchers). The child resets
// exactly these, plus SIGCHLD (ev_child's), before anything else: it inherits libev's
// handlers, which would swallow them and write into a pipe shared with the master.
inline constexpr int kMasterSignals[] = {SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                         SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};

// What one child gets, decided by the master before fork.
struct ChildSetup {
  WorkerContext context;         // handed to the worker function as is (after in_child)
  std::vector<int> close_first;  // master-only fds the child closes before anything else
  std::string process_name;      // the child's log prefix ("worker 3")
  // Runs in the child right before the worker function, for what must not happen in the
  // master (the StatsBoard slot may be a private record allocated there). May be empty.
  std::function<void(WorkerContext*)> in_child;
  // What the child runs instead of the Spawner's worker function: a preload process
  // ([server] preload) runs the preload function. Null: the worker function.
  WorkerMain main = nullptr;
};

class Spawner {
 public:
  // |loop| is the master's loop (the child destroys its copy without running it);
  // |worker_main| is what every child runs.
  Spawner(struct ev_loop* loop, WorkerMain worker_main) : loop_(loop), worker_main_(worker_main) {}

  // A master-only descriptor (the locked pidfile) that every worker closes at once.
  void close_in_workers(int fd) { close_in_workers_.push_back(fd); }

  // Forks a worker. In the master: the child's pid, or an Io status when fork failed. In
  // the child it never returns: setup, then worker_main, then _exit with its result
  // (kExitBootError if anything throws). Flushes the logs first, so a buffered line is not
  // written by both processes.
  Result<pid_t> spawn(ChildSetup& setup);

 private:
  [[noreturn]] void run_child(ChildSetup& setup) noexcept;

  struct ev_loop* loop_;
  WorkerMain worker_main_;
  std::vector<int> close_in_workers_;
};

}  // namespace aiowsgi::master
