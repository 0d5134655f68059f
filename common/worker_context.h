// WorkerContext: the contract between the master and a worker process. The master fills one
// in before fork and hands it to the function the child runs (WorkerMain); the worker reads
// it and nothing else of the master's. Plain data, no Python; used in both processes.
#pragma once

#include <string>
#include <vector>

namespace aiowsgi {

namespace config {
struct Config;  // config/config.h
}  // namespace config
struct WorkerScore;  // common/stats_board.h
class StatsBoard;

struct ListenSocket {
  int fd = -1;         // bound, listening, non-blocking, close-on-exec; owned by the master
  std::string name;    // as configured, for logs and stats
  bool uwsgi = false;  // uwsgi binary protocol instead of HTTP
  bool tls = false;    // https://: the worker serves TLS on it ([tls] in the config)
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

// The function a forked child runs (worker::run_worker in production, wired by the master's
// main()). Its result is the process exit status (common/exit_codes.h) and is passed to
// _exit(); it must never return into the master's code by another path, nor throw.
using WorkerMain = int (*)(const WorkerContext&) noexcept;

}  // namespace aiowsgi
