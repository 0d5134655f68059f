// The old master's upgrade states: every edge of next_upgrade_state, without forking.
#include "master/upgrade.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace aiowsgi::master {
namespace {

using S = UpgradeState;
using E = UpgradeEvent;

TEST(UpgradeState, Usr2StartsOnlyFromIdle) {
  EXPECT_EQ(next_upgrade_state(S::kIdle, E::kRequested), S::kStarting);
  // A second USR2 while one is under way or being abandoned changes nothing.
  EXPECT_EQ(next_upgrade_state(S::kStarting, E::kRequested), S::kStarting);
  EXPECT_EQ(next_upgrade_state(S::kAbandoned, E::kRequested), S::kAbandoned);
  EXPECT_EQ(next_upgrade_state(S::kHandedOver, E::kRequested), S::kHandedOver);
}

TEST(UpgradeState, ReadyHandsOver) {
  EXPECT_EQ(next_upgrade_state(S::kStarting, E::kReady), S::kHandedOver);
  EXPECT_EQ(next_upgrade_state(S::kIdle, E::kReady), S::kIdle);  // stale byte: ignored
  EXPECT_EQ(next_upgrade_state(S::kHandedOver, E::kChildReaped), S::kHandedOver);
}

TEST(UpgradeState, FailureWaitsForTheReapThenAllowsAnotherTry) {
  EXPECT_EQ(next_upgrade_state(S::kStarting, E::kFailed), S::kAbandoned);
  EXPECT_EQ(next_upgrade_state(S::kAbandoned, E::kFailed), S::kAbandoned);
  EXPECT_EQ(next_upgrade_state(S::kAbandoned, E::kChildReaped), S::kIdle);
  // The new master exiting before it said it was ready.
  EXPECT_EQ(next_upgrade_state(S::kStarting, E::kChildReaped), S::kIdle);
}

TEST(StatsFds, ParsesCommaSeparatedPositions) {
  std::vector<int> fds;
  EXPECT_TRUE(parse_fd_list("5", &fds));
  EXPECT_EQ(fds, std::vector<int>({5}));
  EXPECT_TRUE(parse_fd_list("5,6,9", &fds));
  EXPECT_EQ(fds, std::vector<int>({5, 6, 9}));
  EXPECT_TRUE(parse_fd_list("", &fds));
  EXPECT_TRUE(fds.empty());
}

TEST(StatsFds, RejectsAnythingElseAndReturnsNone) {
  std::vector<int> fds;
  for (const char* bad : {"2", "0", "-4", "5,", ",5", "5,,6", "5 ,6", " 5", "x", "5,6,5", "70000",
                          "99999999999999999999", "5;6", "0x5"}) {
    fds = {7};
    EXPECT_FALSE(parse_fd_list(bad, &fds)) << bad;
    EXPECT_TRUE(fds.empty()) << bad;
  }
}

TEST(StatsFds, TakesOpenFdsCloseOnExecAndUnsetsTheVariable) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);  // inheritable, blocking
  int closed = ::dup(pair[0]);
  ::close(closed);  // a number that is not open: skipped
  std::string value = std::to_string(pair[0]) + "," + std::to_string(closed);
  ASSERT_EQ(::setenv("AIOWSGI_STATS_FDS", value.c_str(), 1), 0);
  std::vector<UniqueFd> taken = take_inherited_stats_fds();
  EXPECT_EQ(::getenv("AIOWSGI_STATS_FDS"), nullptr);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].get(), pair[0]);
  EXPECT_TRUE(::fcntl(pair[0], F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(pair[0], F_GETFL) & O_NONBLOCK);
  ::close(pair[1]);

  ASSERT_EQ(::setenv("AIOWSGI_STATS_FDS", "3,x", 1), 0);
  EXPECT_TRUE(take_inherited_stats_fds().empty());  // malformed: none, fd 3 left alone
  EXPECT_EQ(::getenv("AIOWSGI_STATS_FDS"), nullptr);
  EXPECT_TRUE(take_inherited_stats_fds().empty());  // unset: none
}

}  // namespace
}  // namespace aiowsgi::master
