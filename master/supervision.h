// Supervision policy: the master's pure decisions about one worker — is its loop blocked past
// harakiri, has it passed reload_on_rss_mb, may another recycle start now.
// Pure functions (no syscalls), so tests cover them without forking.
// Master only; no Python.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "common/control.h"
#include "config/config.h"

namespace aiowsgi::master {

// A worker's heartbeat (every 0.25 s, from its loop's tick) must be this late, and later
// than harakiri, before the master decides the loop is blocked: a busy loop or a long
// garbage collection can delay a tick by a second, and killing a healthy worker drops every
// request it holds.
inline constexpr double kMinHeartbeatSilenceSeconds = 2.0;
// The worker cancels a suspended request past harakiri itself. If one is still running this
// long after its harakiri deadline, the cancellation failed (the app swallowed GreenletExit)
// and the master replaces the worker.
inline constexpr double kHarakiriBackstopSeconds = 10.0;

// How long harakiri leaves a worker between SIGUSR2 (write the stack of the code running) and
// SIGKILL. The dump is a few writes from the worker's signal handler into a pipe that a thread
// of its own logs, so a second is ample even on a loaded machine.
inline constexpr double kStackDumpSeconds = 1.0;

enum class HarakiriVerdict {
  kNone,          // healthy, or harakiri is off
  kLoopBlocked,   // no heartbeat for max(harakiri, kMinHeartbeatSilenceSeconds)
  kNotCancelled,  // a request outlived harakiri + kHarakiriBackstopSeconds
};

struct HarakiriInput {
  double harakiri = 0;    // limits.harakiri (0: off)
  double silent_for = 0;  // seconds since the last heartbeat (or kReady)
  double oldest_age = 0;  // age of the oldest in-flight request, seconds (0: none)
  int in_flight = 0;      // requests running now
};

HarakiriVerdict harakiri_verdict(const HarakiriInput& in);

enum class RecycleReason { kNone, kRss };

// Whether a serving worker that uses |rss_bytes| of memory should be replaced (0: never).
// max_requests is not a master policy: the worker counts its requests and reports kRetiring
// when it hands the last one, so the count is exact.
RecycleReason recycle_reason(const config::LimitsConfig& limits, uint64_t rss_bytes);

// A heartbeat as the master keeps it: every figure comes from the worker, which may be buggy
// or compromised, so counts are clamped to what the master configured (|cores|) and times to
// what cannot overflow when converted to nanoseconds.
ControlMessage sanitized_heartbeat(const ControlMessage& m, uint64_t cores);

// How many workers may be in the middle of a recycle (replacement booting, old one still
// serving) at once: recycling all of them together would leave no warm worker.
inline int max_concurrent_recycles(int target_workers) {
  return target_workers / 2 > 1 ? target_workers / 2 : 1;
}

const char* recycle_reason_text(RecycleReason r);

}  // namespace aiowsgi::master
