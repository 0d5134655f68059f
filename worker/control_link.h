// ControlLink: the worker's end of its control socketpair with the master (common/control.h).
// Workers only; no Python. Every call is non-blocking and a no-op when fd < 0 (a worker run
// without a master, as in tests).
#pragma once

#include <cstdint>

#include "common/control.h"

namespace aiowsgi::worker {

struct ControlLink {
  enum class Command { kNone, kDrain, kStop, kReopenLogs, kMasterGone };

  // Reads the next command; false when there is none now. For kDrain, *reason says why.
  static bool receive(int fd, Command* cmd, DrainReason* reason) noexcept;
  static void ready(int fd, int worker_id) noexcept;
  static void app_load_error(int fd, int worker_id) noexcept;
  static void boot_error(int fd, int worker_id) noexcept;
  // |oldest_request_ms|: CLOCK_MONOTONIC start of the oldest request in flight (0: idle).
  static void heartbeat(int fd, int worker_id, uint64_t requests, uint64_t busy_cores,
                        uint64_t oldest_request_ms) noexcept;
  // max_requests: the last request was taken on (|requests| in all); see ControlType::kRetiring.
  static void retiring(int fd, int worker_id, uint64_t requests) noexcept;
  static void reopen_logs() noexcept;
};

}  // namespace aiowsgi::worker
