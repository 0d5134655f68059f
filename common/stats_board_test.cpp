#include "common/stats_board.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aiowsgi {
namespace {

TEST(StatsBoard, ClaimsZeroedSlotsUntilFull) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(3, 10, &b).ok());
  EXPECT_EQ(b.slots(), 3);
  EXPECT_EQ(b.core_detail(), 10);
  EXPECT_EQ(b.claim(), 0);
  EXPECT_EQ(b.claim(), 1);
  EXPECT_EQ(b.claim(), 2);
  EXPECT_EQ(b.claim(), -1);
  score_request_begin(b.worker(1), 0, "GET", "/", 0);
  score_request_end(b.worker(1), 0, 200, 10, 0, 0);
  b.release(1);
  EXPECT_EQ(b.claim(), 1);
  EXPECT_EQ(b.worker(1)->requests.load(), 0u);
  EXPECT_EQ(b.worker(1)->cores()[0].requests.load(), 0u);
  EXPECT_EQ(b.worker(1)->core_detail, 10u);
}

TEST(StatsBoard, CoreDetailIsCappedAndTheRestAggregated) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 100000, &b).ok());
  EXPECT_EQ(b.core_detail(), kMaxCoreDetail);
  WorkerScore* w = b.worker(b.claim());
  EXPECT_EQ(w->core(5), w->cores() + 5);
  EXPECT_EQ(w->core(kMaxCoreDetail), w->cores() + kMaxCoreDetail);
  EXPECT_EQ(w->core(99999), w->cores() + kMaxCoreDetail);
  score_request_begin(w, 5000, "GET", "/a", 0);
  score_request_begin(w, 6000, "GET", "/b", 0);
  EXPECT_EQ(w->core(5000)->in_request.load(), 2u);
  EXPECT_EQ(w->in_flight.load(), 2u);
  score_request_end(w, 5000, 200, 0, 0, 0);
  EXPECT_EQ(w->core(6000)->in_request.load(), 1u);
  EXPECT_EQ(w->core(6000)->requests.load(), 1u);
  EXPECT_EQ(w->requests.load(), 1u);
}

TEST(StatsBoard, RequestFiguresAndCounters) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 4, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  score_request_begin(w, 2, "POST", "/upload?x=1", 1000);
  const CoreScore& c = w->cores()[2];
  EXPECT_EQ(c.in_request.load(), 1u);
  EXPECT_EQ(std::string(c.request_text, c.request_text_len.load()), "POST /upload?x=1");
  usleep(2000);
  RequestFigures f = score_request_end(w, 2, 404, 1500, 3, 1);
  EXPECT_EQ(f.bytes, 500u);
  EXPECT_GE(f.duration_us, 2000u);
  EXPECT_LT(f.duration_us, 2000000u);
  EXPECT_EQ(c.in_request.load(), 0u);
  EXPECT_EQ(c.requests.load(), 1u);
  EXPECT_EQ(w->requests.load(), 1u);
  EXPECT_EQ(w->status_class[4].load(), 1u);
  EXPECT_EQ(w->tx.load(), 1500u);
  EXPECT_EQ(w->exceptions.load(), 3u);
  EXPECT_EQ(w->harakiri_count.load(), 1u);
  EXPECT_EQ(w->avg_rt_us.load(), f.duration_us);
  EXPECT_EQ(w->running_time_us.load(), f.duration_us);
  EXPECT_EQ(w->in_flight.load(), 0u);
  score_request_begin(w, 0, "GET", "/", 1500);
  score_request_end(w, 0, 0, 1500, 3, 1);  // no status: client gone
  EXPECT_EQ(w->status_class[0].load(), 1u);
  score_write_error(w, 0);
  score_read_error(w, 3);
  ScoreTotals t = StatsBoard::totals(*w, b.core_detail());
  EXPECT_EQ(t.requests, 2u);
  EXPECT_EQ(t.write_errors, 1u);
  EXPECT_EQ(t.read_errors, 1u);
  uint64_t in_buckets = 0;
  for (uint64_t n : t.duration_bucket) in_buckets += n;
  EXPECT_EQ(in_buckets, 2u);
  // A null slot (no room on the board) is accepted everywhere.
  score_request_begin(nullptr, 0, "GET", "/", 0);
  EXPECT_EQ(score_request_end(nullptr, 0, 200, 0, 0, 0).bytes, 0u);
  score_write_error(nullptr, 0);
}

TEST(StatsBoard, LongRequestTextIsTruncated) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 1, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  std::string target(500, 'x');
  score_request_begin(w, 0, "GET", target, 0);
  EXPECT_EQ(w->cores()[0].request_text_len.load(), kRequestTextBytes);
}

TEST(StatsBoard, DurationBuckets) {
  EXPECT_EQ(duration_bucket(0), 0u);
  EXPECT_EQ(duration_bucket(1000), 0u);  // le=0.001 is inclusive
  EXPECT_EQ(duration_bucket(1001), 1u);
  EXPECT_EQ(duration_bucket(1000000), 9u);  // le=1
  EXPECT_EQ(duration_bucket(61000000), kBucketCount - 1);
}

TEST(StatsBoard, ReleasedSlotsKeepTheirCountsInRetired) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(2, 2, &b).ok());
  int s = b.claim();
  for (int i = 0; i < 3; ++i) {
    score_request_begin(b.worker(s), 0, "GET", "/", 0);
    score_request_end(b.worker(s), 0, 200, 0, 0, 0);
  }
  score_request_begin(b.worker(s), 1, "GET", "/", 0);  // cut short by the exit
  b.release(s);
  b.release(s);  // twice is harmless
  EXPECT_EQ(b.retired().requests, 3u);
  EXPECT_EQ(b.retired().status_class[2], 3u);
  EXPECT_EQ(b.retired().in_flight, 0u);
}

TEST(StatsBoard, ChildWritesAreSeenByTheParent) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(2, 4, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 5; ++i) {
      score_request_begin(w, 1, "GET", "/", 0);
      score_request_end(w, 1, 200, 100 * (i + 1), 0, 0);
    }
    score_request_begin(w, 3, "GET", "/slow", 500);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(w->requests.load(), 5u);
  EXPECT_EQ(w->cores()[1].requests.load(), 5u);
  EXPECT_EQ(w->cores()[3].in_request.load(), 1u);
  EXPECT_EQ(w->tx.load(), 500u);
}

TEST(StatsBoard, ViewIsEmptyUntilARequestStarts) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 4, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  EXPECT_EQ(w->running_core.load(), -1);
  ScoreView v = view(*w, b.core_detail());
  EXPECT_EQ(v.in_flight, 0u);
  EXPECT_EQ(v.oldest_ns, 0u);
  EXPECT_EQ(v.suspect_core, -1);
  EXPECT_TRUE(v.suspect.empty());
  score_running_core(w, 2);  // in the loop's core, but no request there yet
  EXPECT_EQ(view(*w, b.core_detail()).suspect_core, -1);
}

TEST(StatsBoard, ViewSuspectIsTheRunningCoreElseTheNewest) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 4, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  score_request_begin(w, 0, "GET", "/old", 0);
  usleep(2000);
  score_request_begin(w, 2, "POST", "/new?x=1", 0);
  ScoreView v = view(*w, b.core_detail());
  EXPECT_EQ(v.in_flight, 2u);
  EXPECT_EQ(v.suspect, "POST /new?x=1");
  EXPECT_EQ(v.suspect_core, 2);
  EXPECT_FALSE(v.suspect_running);
  EXPECT_LT(v.oldest_ns, v.suspect_ns);
  EXPECT_EQ(v.oldest_ns, w->cores()[0].start_ns.load());

  score_running_core(w, 0);
  v = view(*w, b.core_detail());
  EXPECT_EQ(v.suspect, "GET /old");
  EXPECT_TRUE(v.suspect_running);
  EXPECT_EQ(v.suspect_ns, v.oldest_ns);
  score_running_core(w, -1);
  EXPECT_FALSE(view(*w, b.core_detail()).suspect_running);

  score_request_end(w, 2, 200, 0, 0, 0);
  score_request_end(w, 0, 200, 0, 0, 0);
  v = view(*w, b.core_detail());
  EXPECT_EQ(v.in_flight, 0u);
  EXPECT_TRUE(v.suspect.empty());
}

TEST(StatsBoard, ViewPastTheDetailedCoresKnowsTheCoreOnly) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(1, 2, &b).ok());
  WorkerScore* w = b.worker(b.claim());
  score_request_begin(w, 0, "GET", "/detailed", 0);
  score_request_begin(w, 7, "GET", "/aggregated", 0);
  score_running_core(w, 7);
  ScoreView v = view(*w, b.core_detail());
  EXPECT_EQ(v.in_flight, 2u);
  EXPECT_EQ(v.suspect_core, 7);
  EXPECT_TRUE(v.suspect_running);
  EXPECT_TRUE(v.suspect.empty());
  EXPECT_EQ(v.suspect_ns, 0u);
  score_running_core(w, -1);
  v = view(*w, b.core_detail());  // back to the newest detailed request, a guess
  EXPECT_EQ(v.suspect, "GET /detailed");
  EXPECT_FALSE(v.suspect_running);
}

TEST(StatsBoard, ViewOfAForkedChildBlockingTheLoop) {
  StatsBoard b;
  ASSERT_TRUE(StatsBoard::create(2, 2, &b).ok());
  b.claim();
  WorkerScore* w = b.worker(b.claim());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    score_request_begin(w, 1, "GET", "/block", 0);
    score_running_core(w, 1);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ScoreView v = view(*w, b.core_detail());
  EXPECT_EQ(v.in_flight, 1u);
  EXPECT_EQ(v.suspect, "GET /block");
  EXPECT_TRUE(v.suspect_running);
  EXPECT_GT(v.suspect_ns, 0u);
  EXPECT_EQ(view(*b.worker(0), b.core_detail()).in_flight, 0u);
}

}  // namespace
}  // namespace aiowsgi
