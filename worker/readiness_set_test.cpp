#include "worker/readiness_set.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <vector>

namespace aiowsgi::worker {
namespace {

struct Pair {
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0); }
  ~Pair() {
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
  }
  int fds[2] = {-1, -1};
};

std::set<int> ready(ReadinessSet& set) {
  std::set<int> out;
  int n = set.wait();
  EXPECT_GE(n, 0);
  for (int i = 0; i < n; ++i) out.insert(set.ready_fd(i));
  return out;
}

TEST(ReadinessSet, ReportsOnlyReadableDescriptors) {
  ReadinessSet set;
  ASSERT_TRUE(set.open());
  Pair a, b;
  ASSERT_TRUE(set.add(a.fds[0]));
  ASSERT_TRUE(set.add(b.fds[0]));
  EXPECT_TRUE(ready(set).empty());
  ASSERT_EQ(write(b.fds[1], "x", 1), 1);
  EXPECT_EQ(ready(set), std::set<int>{b.fds[0]});
  // Level-triggered: still ready until read.
  EXPECT_EQ(ready(set), std::set<int>{b.fds[0]});
  char c;
  ASSERT_EQ(read(b.fds[0], &c, 1), 1);
  EXPECT_TRUE(ready(set).empty());
}

TEST(ReadinessSet, HangUpIsReported) {
  ReadinessSet set;
  ASSERT_TRUE(set.open());
  Pair a;
  ASSERT_TRUE(set.add(a.fds[0]));
  close(a.fds[1]);
  a.fds[1] = -1;
  EXPECT_EQ(ready(set), std::set<int>{a.fds[0]});
}

TEST(ReadinessSet, RemovedDescriptorIsNotReported) {
  ReadinessSet set;
  ASSERT_TRUE(set.open());
  Pair a;
  ASSERT_TRUE(set.add(a.fds[0]));
  ASSERT_EQ(write(a.fds[1], "x", 1), 1);
  ASSERT_TRUE(set.remove(a.fds[0]));
  EXPECT_TRUE(ready(set).empty());
  EXPECT_FALSE(set.remove(a.fds[0]));  // not watched any more
  EXPECT_FALSE(set.add(-1));
}

TEST(ReadinessSet, TheSetItselfIsReadableWhileAMemberIs) {
  // The asyncio loop watches the set's own descriptor: it must poll readable exactly when a
  // member is.
  ReadinessSet set;
  ASSERT_TRUE(set.open());
  Pair a;
  ASSERT_TRUE(set.add(a.fds[0]));
  ReadinessSet outer;
  ASSERT_TRUE(outer.open());
  ASSERT_TRUE(outer.add(set.fd()));
  EXPECT_TRUE(ready(outer).empty());
  ASSERT_EQ(write(a.fds[1], "x", 1), 1);
  EXPECT_EQ(ready(outer), std::set<int>{set.fd()});
}

TEST(ReadinessSet, AtMostOneBatchPerWait) {
  ReadinessSet set;
  ASSERT_TRUE(set.open());
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < ReadinessSet::kBatch + 5; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(set.add(pairs.back()->fds[0]));
    ASSERT_EQ(write(pairs.back()->fds[1], "x", 1), 1);
  }
  EXPECT_EQ(set.wait(), ReadinessSet::kBatch);
}

}  // namespace
}  // namespace aiowsgi::worker
