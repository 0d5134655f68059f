// Supervision policy: harakiri verdicts, recycle reasons and the recycle concurrency cap,
// without forking.
#include "master/supervision.h"

#include <gtest/gtest.h>

namespace aiowsgi::master {
namespace {

TEST(Harakiri, OffWhenZero) {
  HarakiriInput in;
  in.silent_for = 1000;
  in.oldest_age = 1000;
  in.in_flight = 3;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNone);
}

TEST(Harakiri, SilenceMustExceedHarakiriAndTheMinimum) {
  HarakiriInput in;
  in.harakiri = 1;
  in.in_flight = 1;
  in.silent_for = 1.5;  // past harakiri, but a slow tick is not a blocked loop yet
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNone);
  in.silent_for = kMinHeartbeatSilenceSeconds;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kLoopBlocked);
  in.harakiri = 30;
  in.silent_for = 29.9;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNone);
  in.silent_for = 30;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kLoopBlocked);
}

TEST(Harakiri, SilenceWithoutARequestStillMeansABlockedLoop) {
  HarakiriInput in;
  in.harakiri = 5;
  in.silent_for = 6;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kLoopBlocked);
}

TEST(Harakiri, SuspendedRequestIsTheWorkersJobUntilTheBackstop) {
  HarakiriInput in;
  in.harakiri = 2;
  in.silent_for = 0.3;  // heartbeats flow: the loop is fine
  in.in_flight = 1;
  in.oldest_age = 2 + kHarakiriBackstopSeconds - 0.1;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNone);
  in.oldest_age = 2 + kHarakiriBackstopSeconds;
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNotCancelled);
  in.in_flight = 0;  // a stale age with nothing in flight means nothing
  EXPECT_EQ(harakiri_verdict(in), HarakiriVerdict::kNone);
}

TEST(Recycle, Reasons) {
  config::LimitsConfig limits;
  EXPECT_EQ(recycle_reason(limits, 1ull << 40), RecycleReason::kNone);
  // max_requests is the worker's decision (worker/request_budget.h), not a master policy.
  limits.max_requests = 5;
  EXPECT_EQ(recycle_reason(limits, 0), RecycleReason::kNone);
  limits.max_requests = 0;
  limits.reload_on_rss_mb = 100;
  EXPECT_EQ(recycle_reason(limits, 100ull * 1024 * 1024), RecycleReason::kNone);
  EXPECT_EQ(recycle_reason(limits, 100ull * 1024 * 1024 + 1), RecycleReason::kRss);
  EXPECT_STREQ(recycle_reason_text(RecycleReason::kRss), "reload_on_rss_mb exceeded");
}

TEST(Heartbeat, WorkerFiguresAreClampedToWhatTheMasterConfigured) {
  ControlMessage m;
  m.type = ControlType::kHeartbeat;
  m.requests = 7;
  m.busy_cores = ~uint64_t{0};         // a worker claiming more cores than it has
  m.oldest_request_ms = ~uint64_t{0};  // would wrap when turned into nanoseconds
  ControlMessage s = sanitized_heartbeat(m, 10);
  EXPECT_EQ(s.busy_cores, 10u);
  EXPECT_EQ(s.oldest_request_ms, 0u);
  EXPECT_EQ(s.requests, 7u);
  m.busy_cores = 3;
  m.oldest_request_ms = 123456;
  s = sanitized_heartbeat(m, 10);
  EXPECT_EQ(s.busy_cores, 3u);
  EXPECT_EQ(s.oldest_request_ms, 123456u);
  // The largest value that still converts without wrapping is kept.
  m.oldest_request_ms = UINT64_MAX / 1000000u;
  EXPECT_EQ(sanitized_heartbeat(m, 10).oldest_request_ms, UINT64_MAX / 1000000u);
}

TEST(Recycle, AtMostHalfTheWorkersAtOnceAndAtLeastOne) {
  EXPECT_EQ(max_concurrent_recycles(1), 1);
  EXPECT_EQ(max_concurrent_recycles(2), 1);
  EXPECT_EQ(max_concurrent_recycles(3), 1);
  EXPECT_EQ(max_concurrent_recycles(8), 4);
}

}  // namespace
}  // namespace aiowsgi::master
