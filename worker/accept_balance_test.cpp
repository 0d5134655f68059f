#include "worker/accept_balance.h"

#include <gtest/gtest.h>

#include <limits>

#include "common/stats_board.h"

namespace aiowsgi::worker {
namespace {

constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();

TEST(AcceptAllowance, UnlimitedWithoutPeers) {
  EXPECT_EQ(accept_allowance(50, 200, nullptr, 0, 2), kUnlimited);
  PeerLoad no_capacity{10, 0};
  EXPECT_EQ(accept_allowance(50, 200, &no_capacity, 1, 2), kUnlimited);
}

TEST(AcceptAllowance, StaysWithinTheMarginOfTheLeastLoadedPeer) {
  PeerLoad peers[] = {{30, 200}, {10, 200}, {50, 200}};
  // Least loaded: 10 (+ 2 margin + 10/8 slack = 13).
  EXPECT_EQ(accept_allowance(0, 200, peers, 3, 2), 13u);
  EXPECT_EQ(accept_allowance(12, 200, peers, 3, 2), 1u);
  EXPECT_EQ(accept_allowance(13, 200, peers, 3, 2), 0u);
  EXPECT_EQ(accept_allowance(90, 200, peers, 3, 2), 0u);
}

TEST(AcceptAllowance, ComparesSharesOfCores) {
  // A peer with half the cores and 10 connections is as loaded as we would be with 20.
  PeerLoad peer{10, 100};
  EXPECT_EQ(accept_allowance(0, 200, &peer, 1, 2), 24u);  // 20 + 2 + 20/8
  EXPECT_EQ(accept_allowance(24, 200, &peer, 1, 2), 0u);
}

TEST(AcceptAllowance, RelativeSlackGrowsWithLoad) {
  PeerLoad peer{800, 1000};
  EXPECT_EQ(accept_allowance(800, 1000, &peer, 1, 2), 102u);
}

TEST(AcceptBalance, ReadsOnlyPeersThatTakeConnections) {
  StatsBoard board;
  ASSERT_TRUE(StatsBoard::create(8, 4, &board).ok());
  WorkerScore* me = board.worker(board.claim());
  WorkerScore* peer = board.worker(board.claim());
  EXPECT_EQ(board.slots_in_use(), 2);
  AcceptBalance mine(&board, me, 200);
  AcceptBalance theirs(&board, peer, 200);
  EXPECT_EQ(me->capacity.load(), 200u);
  // The peer does not take connections yet: nothing to balance against.
  EXPECT_EQ(mine.allowance(1000), kUnlimited);
  theirs.set_accepting(true);
  theirs.set_connections(4);
  EXPECT_EQ(mine.allowance(0), 6u);
  EXPECT_EQ(mine.allowance(6), 0u);
  // Progress of the peers is what a deferral watches.
  uint64_t mark = mine.peers_accepted();
  theirs.count_accepted();
  EXPECT_EQ(mine.peers_accepted(), mark + 1);
  mine.count_accepted();  // our own accepts are not the peers' progress
  EXPECT_EQ(mine.peers_accepted(), mark + 1);
  // A peer reaped by the master no longer counts, even if it died while accepting.
  board.release(1);
  EXPECT_EQ(mine.allowance(1000), kUnlimited);
}

TEST(AcceptBalance, ALoneWorkerIsNeverLimited) {
  AcceptBalance lone(nullptr, nullptr, 10);
  EXPECT_EQ(lone.allowance(1000000), kUnlimited);
  lone.set_accepting(true);
  lone.count_accepted();
  EXPECT_EQ(lone.accepted(), 0u);
}

}  // namespace
}  // namespace aiowsgi::worker
