// Tests for BodyDeadline: the slow-drip rule as arithmetic.

#include "worker/protocol/body_deadline.h"

#include <gtest/gtest.h>

#include <cmath>

namespace aiowsgi::worker {
namespace {

TEST(BodyDeadline, BudgetIsTimeoutPlusOneSecondPerKiBMinusTimeWaited) {
  BodyDeadline d;
  EXPECT_DOUBLE_EQ(d.remaining(60, 0), 60);
  EXPECT_DOUBLE_EQ(d.remaining(60, 10240), 70);  // 10 KiB earned 10 s
  d.add_wait(59.5);
  EXPECT_DOUBLE_EQ(d.remaining(60, 0), 0.5);
  d.add_wait(1);
  EXPECT_LE(d.remaining(60, 0), 0);     // a drip that sent nothing is out of time
  EXPECT_GT(d.remaining(60, 2048), 0);  // one that sent 2 KiB has 1.5 s left
  d.add_wait(-5);                       // clock noise never gives time back
  EXPECT_DOUBLE_EQ(d.waited(), 60.5);
  d.reset();
  EXPECT_DOUBLE_EQ(d.remaining(60, 0), 60);
}

TEST(BodyDeadline, ZeroTimeoutMeansNoOverallLimit) {
  BodyDeadline d;
  d.add_wait(1e9);
  EXPECT_TRUE(std::isinf(d.remaining(0, 0)));
}

TEST(BodyDeadline, ADripRunsOutASteadyUploadDoesNot) {
  // One byte every 5 s (each wait 5 s): out of time after about body_timeout seconds.
  BodyDeadline drip;
  uint64_t got = 0;
  int waits = 0;
  while (drip.remaining(60, got) > 0 && waits < 1000) {
    drip.add_wait(5);
    ++got;
    ++waits;
  }
  EXPECT_LE(waits, 13);
  // 100 MiB at 64 KiB per 10 ms wait: never out of time.
  BodyDeadline steady;
  uint64_t up = 0;
  for (int i = 0; i < 1600; ++i) {
    ASSERT_GT(steady.remaining(60, up), 0) << i;
    steady.add_wait(0.01);
    up += 65536;
  }
}

}  // namespace
}  // namespace aiowsgi::worker
