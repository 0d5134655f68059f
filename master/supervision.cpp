#include "master/supervision.h"

#include <algorithm>
#include <cstdint>

namespace aiowsgi::master {

HarakiriVerdict harakiri_verdict(const HarakiriInput& in) {
  if (in.harakiri <= 0) return HarakiriVerdict::kNone;
  if (in.silent_for >= std::max(in.harakiri, kMinHeartbeatSilenceSeconds)) {
    return HarakiriVerdict::kLoopBlocked;
  }
  if (in.in_flight > 0 && in.oldest_age >= in.harakiri + kHarakiriBackstopSeconds) {
    return HarakiriVerdict::kNotCancelled;
  }
  return HarakiriVerdict::kNone;
}

RecycleReason recycle_reason(const config::LimitsConfig& limits, uint64_t rss_bytes) {
  if (limits.reload_on_rss_mb > 0 &&
      rss_bytes > static_cast<uint64_t>(limits.reload_on_rss_mb) * 1024 * 1024) {
    return RecycleReason::kRss;
  }
  return RecycleReason::kNone;
}

const char* recycle_reason_text(RecycleReason r) {
  switch (r) {
    case RecycleReason::kNone:
      return "none";
    case RecycleReason::kRss:
      return "reload_on_rss_mb exceeded";
  }
  return "unknown";
}

ControlMessage sanitized_heartbeat(const ControlMessage& m, uint64_t cores) {
  ControlMessage out = m;
  out.busy_cores = std::min(m.busy_cores, cores);
  // The master multiplies by 1e6 (ms -> ns): a larger value would wrap to a made-up age.
  constexpr uint64_t kMaxMs = UINT64_MAX / 1000000u;
  if (m.oldest_request_ms > kMaxMs) out.oldest_request_ms = 0;
  return out;
}

}  // namespace aiowsgi::master
