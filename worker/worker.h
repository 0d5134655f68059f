// Worker process entry point: called by the master in a freshly forked child.
// Before Python starts it resets the signal state inherited from the master; then it embeds
// CPython, imports the app and runs the asyncio loop until told to stop.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace aiowsgi {
struct WorkerScore;  // common/stats_board.h
class StatsBoard;
}  // namespace aiowsgi

namespace aiowsgi::worker {

struct ListenSocket {
  int fd = -1;         // bound, listening, non-blocking, close-on-exec; owned by the master
  std::string name;    // as configured, for logs and stats
  bool uwsgi = false;  // uwsgi binary protocol instead of HTTP
};

struct WorkerContext {
  const config::Config* config = nullptr;
  int worker_id = 1;  // 1-based, like uWSGI
  int num_workers = 1;
  std::vector<ListenSocket> sockets;
  int control_fd = -1;           // the worker's end of its control socketpair (-1: none)
  std::vector<int> close_fds;    // master-only fds the child must close at once
  WorkerScore* score = nullptr;  // this process's StatsBoard slot (null: not counted)
  // The board holding |score| (inherited mapping; read-only here): the peers' slots.
  const StatsBoard* board = nullptr;
};

// Runs the worker; returns the process exit status (common/exit_codes.h). The caller must
// pass it to _exit() and never return into the master's loop. Never throws.
int run_worker(const WorkerContext& ctx) noexcept;

}  // namespace aiowsgi::worker
