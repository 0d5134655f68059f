// RequestBudget: exact max_requests counting with reservations for open connections.
#include "worker/request_budget.h"

#include <gtest/gtest.h>

namespace aiowsgi::worker {
namespace {

TEST(RequestBudget, UnlimitedNeverRunsOut) {
  RequestBudget b(0);
  EXPECT_FALSE(b.limited());
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(b.reserve());
    EXPECT_TRUE(b.admit(true));
  }
  EXPECT_TRUE(b.has_room());
  EXPECT_FALSE(b.spent());
}

// One keep-alive connection, five requests: the fifth response closes the connection.
TEST(RequestBudget, KeepAliveConnectionGetsCloseOnTheLastRequest) {
  RequestBudget b(5);
  ASSERT_TRUE(b.reserve());  // accepted
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(b.admit(true)) << i;
    bool keep_alive = b.reserve();  // decided when the response head is built
    EXPECT_EQ(keep_alive, i < 5) << i;
  }
  EXPECT_TRUE(b.spent());
  EXPECT_EQ(b.admitted(), 5u);
  EXPECT_EQ(b.reserved(), 0u);
}

// Fresh connections: the one that may bring the fifth request is the last accepted; a
// connection that closes without a request gives its place back.
TEST(RequestBudget, AcceptsOnlyWhatItCanServe) {
  RequestBudget b(5);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.reserve());
  EXPECT_FALSE(b.has_room());
  EXPECT_FALSE(b.reserve());  // a sixth connection waits in the backlog
  b.release();                // one client went away without a request
  EXPECT_TRUE(b.reserve());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.admit(true));
  EXPECT_TRUE(b.spent());
  EXPECT_FALSE(b.admit(false));  // nothing more, whatever asks
  EXPECT_EQ(b.admitted(), 5u);
}

TEST(RequestBudget, AdmitWithoutReservationNeedsRoom) {
  RequestBudget b(2);
  ASSERT_TRUE(b.reserve());
  ASSERT_TRUE(b.admit(false));  // 1 admitted + 1 reserved: full
  EXPECT_FALSE(b.admit(false));
  EXPECT_TRUE(b.admit(true));
  EXPECT_TRUE(b.spent());
  b.release();  // releasing with nothing reserved is harmless
  EXPECT_EQ(b.reserved(), 0u);
}

}  // namespace
}  // namespace aiowsgi::worker
