// Tests for the master's lifecycle (next_state, every edge), the respawn back-off and the
// worker table. No fork: the end-to-end behaviour is covered by tests/e2e.
#include <gtest/gtest.h>

#include <map>
#include <utility>

#include "master/lifecycle.h"
#include "master/worker_table.h"

namespace aiowsgi::master {
namespace {

using S = MasterState;
using E = Event;

// The edges that change the state; every other (state, event) pair must leave it as is.
const std::map<std::pair<S, E>, S>& changing_edges() {
  static const std::map<std::pair<S, E>, S> edges = {
      {{S::kStarting, E::kTerm}, S::kStopping},
      {{S::kStarting, E::kQuit}, S::kKilling},
      {{S::kStarting, E::kWorkerReady}, S::kRunning},
      {{S::kStarting, E::kBootFailed}, S::kStopping},
      {{S::kRunning, E::kTerm}, S::kStopping},
      {{S::kRunning, E::kQuit}, S::kKilling},
      {{S::kRunning, E::kHup}, S::kReloading},
      {{S::kReloading, E::kTerm}, S::kStopping},
      {{S::kReloading, E::kQuit}, S::kKilling},
      {{S::kReloading, E::kReloadDone}, S::kRunning},
      {{S::kReloading, E::kReloadFailed}, S::kRunning},
      {{S::kReloading, E::kBootFailed}, S::kRunning},
      {{S::kStopping, E::kQuit}, S::kKilling},
      {{S::kStopping, E::kGraceExpired}, S::kKilling},
      {{S::kStopping, E::kAllExited}, S::kDone},
      {{S::kKilling, E::kAllExited}, S::kDone},
  };
  return edges;
}

TEST(MasterStateMachine, EveryEdge) {
  int changed = 0;
  for (S s : kAllMasterStates) {
    for (E e : kAllEvents) {
      auto it = changing_edges().find({s, e});
      S expected = it == changing_edges().end() ? s : it->second;
      EXPECT_EQ(next_state(s, e), expected)
          << master_state_name(s) << " + " << event_name(e) << " gave "
          << master_state_name(next_state(s, e)) << ", want " << master_state_name(expected);
      if (expected != s) ++changed;
    }
  }
  // Every listed edge was visited by the loop above (the lists of states/events are complete).
  EXPECT_EQ(changed, static_cast<int>(changing_edges().size()));
  EXPECT_EQ(std::size(kAllMasterStates), 6u);
  EXPECT_EQ(std::size(kAllEvents), 13u);
}

TEST(MasterStateMachine, DoneIsFinal) {
  for (E e : kAllEvents) EXPECT_EQ(next_state(S::kDone, e), S::kDone) << event_name(e);
}

TEST(MasterStateMachine, HupWhileStartingIsDeferredNotLost) {
  // The Arbiter keeps a pending flag; the state machine itself must not start a reload
  // before the first generation is ready, nor forget the running state on the way.
  EXPECT_EQ(next_state(S::kStarting, E::kHup), S::kStarting);
  S s = next_state(S::kStarting, E::kWorkerReady);
  EXPECT_EQ(s, S::kRunning);
  EXPECT_EQ(next_state(s, E::kHup), S::kReloading);
  EXPECT_EQ(next_state(S::kReloading, E::kHup), S::kReloading);
}

TEST(MasterStateMachine, ShutdownPaths) {
  // TERM, grace runs out, everyone reaped.
  S s = next_state(S::kRunning, E::kTerm);
  s = next_state(s, E::kChildExited);
  EXPECT_EQ(s, S::kStopping);
  s = next_state(s, E::kTerm);  // a second TERM does not restart anything
  EXPECT_EQ(s, S::kStopping);
  s = next_state(s, E::kGraceExpired);
  EXPECT_EQ(s, S::kKilling);
  s = next_state(s, E::kTerm);  // cannot go back to graceful once killing
  EXPECT_EQ(s, S::kKilling);
  EXPECT_EQ(next_state(s, E::kAllExited), S::kDone);
  // A boot failure at first start stops the master, never keeps it respawning.
  EXPECT_EQ(next_state(S::kStarting, E::kBootFailed), S::kStopping);
  // The same after the first generation is up only respawns (state unchanged).
  EXPECT_EQ(next_state(S::kRunning, E::kBootFailed), S::kRunning);
}

TEST(MasterStateMachine, NamesAreDistinct) {
  std::map<std::string, int> names;
  for (S s : kAllMasterStates) ++names[master_state_name(s)];
  for (E e : kAllEvents) ++names[std::string("e:") + event_name(e)];
  for (const auto& [name, n] : names) {
    EXPECT_EQ(n, 1) << name;
    EXPECT_EQ(name.find("unknown"), std::string::npos);
  }
}

TEST(RespawnBackoff, QuickDeathsDoubleUpToTheCap) {
  double d = 0;
  d = next_backoff(d, 0.1);
  EXPECT_DOUBLE_EQ(d, kFirstBackoffSeconds);
  d = next_backoff(d, 0.2);
  EXPECT_DOUBLE_EQ(d, 2 * kFirstBackoffSeconds);
  d = next_backoff(d, 0.0);
  EXPECT_DOUBLE_EQ(d, 4 * kFirstBackoffSeconds);
  for (int i = 0; i < 20; ++i) d = next_backoff(d, 0.5);
  EXPECT_DOUBLE_EQ(d, kMaxBackoffSeconds);
}

TEST(RespawnBackoff, NormalLifeResets) {
  EXPECT_DOUBLE_EQ(next_backoff(0, kQuickDeathSeconds), 0);
  EXPECT_DOUBLE_EQ(next_backoff(8, 3600), 0);
  EXPECT_DOUBLE_EQ(next_backoff(kMaxBackoffSeconds, kQuickDeathSeconds + 0.01), 0);
  // Just under the threshold still counts as a quick death.
  EXPECT_DOUBLE_EQ(next_backoff(0, kQuickDeathSeconds - 0.01), kFirstBackoffSeconds);
}

std::unique_ptr<WorkerProcess> make_proc(int id, pid_t pid, int generation, WorkerState st) {
  auto p = std::make_unique<WorkerProcess>();
  p->id = id;
  p->pid = pid;
  p->generation = generation;
  p->state = st;
  return p;
}

TEST(WorkerTable, ActivePrefersNewestGenerationAndSkipsDraining) {
  WorkerTable t;
  t.add(make_proc(1, 100, 1, WorkerState::kBooted));
  t.add(make_proc(2, 101, 1, WorkerState::kDraining));
  EXPECT_EQ(t.active(1)->pid, 100);
  EXPECT_EQ(t.active(2), nullptr);  // draining does not fill the slot
  t.add(make_proc(1, 102, 2, WorkerState::kSpawned));
  EXPECT_EQ(t.active(1)->pid, 102);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.find(101)->id, 2);
  EXPECT_EQ(t.find(999), nullptr);

  auto removed = t.remove(102);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->pid, 102);
  EXPECT_EQ(t.remove(102), nullptr);
  EXPECT_EQ(t.active(1)->pid, 100);
  EXPECT_EQ(t.all().size(), 2u);
}

TEST(WorkerTable, RecycleReplacementIsActiveAndTheRetiringWorkerKnowsIt) {
  WorkerTable t;
  WorkerProcess* old = t.add(make_proc(1, 100, 1, WorkerState::kBooted));
  old->serial = 1;
  old->retiring = true;
  EXPECT_FALSE(t.has_replacement(old));
  EXPECT_EQ(t.active(1)->pid, 100);
  WorkerProcess* fresh = t.add(make_proc(1, 101, 1, WorkerState::kSpawned));
  fresh->serial = 2;
  EXPECT_TRUE(t.has_replacement(old));
  EXPECT_FALSE(t.has_replacement(fresh));
  EXPECT_EQ(t.active(1)->pid, 101);  // same generation: the later fork fills the slot
  // The replacement died before it was ready: the old worker fills the slot again.
  t.remove(101);
  EXPECT_FALSE(t.has_replacement(old));
  EXPECT_EQ(t.active(1)->pid, 100);
}

TEST(WorkerTable, SlotsKeepBackoffAcrossProcesses) {
  WorkerTable t;
  t.slot(3).backoff = 2;
  t.slot(3).respawn_count = 5;
  EXPECT_DOUBLE_EQ(t.slot(3).backoff, 2);
  EXPECT_EQ(t.slot(3).respawn_count, 5);
  EXPECT_EQ(t.slot(1).respawn_count, 0);
  EXPECT_STREQ(worker_state_name(WorkerState::kDraining), "draining");
}

}  // namespace
}  // namespace aiowsgi::master
