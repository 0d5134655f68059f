// The old master's upgrade states: every edge of next_upgrade_state, without forking.
#include "master/upgrade.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace aiowsgi::master
