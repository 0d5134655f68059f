#include "worker/core_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::worker {
namespace {

TEST(CoreGuard, CleanGreenletServesTheNextRequestItself) {
  EXPECT_EQ(next_step(false, 2, 2), NextStep::kHere);
  EXPECT_EQ(next_step(false, 1, 2), NextStep::kHere);  // fewer: never a reason to leave
}

TEST(CoreGuard, ExtraReferenceGoesThroughTheLoop) {
  EXPECT_EQ(next_step(false, 3, 2), NextStep::kViaLoop);
  EXPECT_EQ(next_step(false, 100, 2), NextStep::kViaLoop);
}

TEST(CoreGuard, AbortedRequestRetiresWhateverTheCount) {
  EXPECT_EQ(next_step(true, 2, 2), NextStep::kRetire);
  EXPECT_EQ(next_step(true, 5, 2), NextStep::kRetire);
}

TEST(CoreGuard, ParkedGreenletReusableOnlyWithTheCoresOwnReference) {
  EXPECT_TRUE(parked_greenlet_reusable(1));
  EXPECT_FALSE(parked_greenlet_reusable(2));
}

TEST(CoreGuard, RequestTextKeepsShortRequestsWhole) {
  RequestText t;
  EXPECT_EQ(t.view(), "");
  t.set("GET", "/leave?t=abc&d=0.3");
  EXPECT_EQ(t.view(), "GET /leave?t=abc&d=0.3");
  t.set("POST", "/");  // a later request replaces it entirely
  EXPECT_EQ(t.view(), "POST /");
}

TEST(CoreGuard, RequestTextTruncatesLongTargetsVisibly) {
  RequestText t;
  std::string target = "/" + std::string(500, 'a');
  t.set("GET", target);
  EXPECT_EQ(t.view().size(), RequestText::kCapacity);
  EXPECT_EQ(t.view().substr(0, 6), "GET /a");
  EXPECT_EQ(t.view().substr(t.view().size() - 3), "...");
}

TEST(CoreGuard, RequestTextBoundsAHugeMethod) {
  RequestText t;
  t.set(std::string(1000, 'M'), "/x");
  EXPECT_LE(t.view().size(), RequestText::kCapacity);
  EXPECT_EQ(t.view().substr(t.view().size() - 3), " /x");
}

TEST(CoreGuard, RequestTextTargetExactlyFillingTheRoom) {
  RequestText t;
  std::string target(RequestText::kCapacity - 4, 'b');  // "GET " + target == capacity
  t.set("GET", target);
  EXPECT_EQ(t.view(), "GET " + target);
}

}  // namespace
}  // namespace aiowsgi::worker
