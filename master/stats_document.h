// The master's monitoring documents, rendered from a snapshot of its state: the stats JSON
// in the layout of uWSGI's stats server ([stats] listen, read by aiowsgi-top) and the
// Prometheus text behind GET /metrics ([stats] metrics). Pure: tests build snapshots by hand.
// Master only; no Python.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/stats_board.h"

namespace aiowsgi::master {

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

// The uWSGI-layout stats document, one line ending in '\n'. Text from the board (request
// lines, which a client chose) and the cwd are taken byte for byte as Latin-1, so any byte
// string is rendered losslessly as \u00XX escapes.
std::string stats_json(const StatsSnapshot& s);
// Prometheus text exposition format 0.0.4.
std::string metrics_text(const StatsSnapshot& s);

}  // namespace aiowsgi::master
