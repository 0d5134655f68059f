// Capacity: the warnings for configured figures the open-file limit or somaxconn cut.
#include "master/capacity.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::master {
namespace {

CapacityInput fits() {
  CapacityInput in;
  in.cores = 100;
  in.max_connections = 10000;
  in.backlog = 1024;
  in.listeners = 1;
  in.nofile = 20000;
  in.somaxconn = 4096;
  return in;
}

TEST(Capacity, NothingToSayWhenEverythingFits) { EXPECT_TRUE(capacity_warnings(fits()).empty()); }

TEST(Capacity, ConnectionsWithinTheLimitLeaveTheWorkersOwnDescriptors) {
  EXPECT_EQ(connections_within(20000, 1), 20000 - kWorkerReservedFds - 1);
  EXPECT_EQ(connections_within(10, 1), 0u);
  CapacityInput in = fits();
  EXPECT_EQ(nofile_needed(in), 10000 + kWorkerReservedFds + 1);
}

TEST(Capacity, MaxConnectionsPastTheOpenFileLimitNamesTheRealCap) {
  CapacityInput in = fits();
  in.nofile = 1024;
  auto w = capacity_warnings(in);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("max_connections = 10000"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("at most " + std::to_string(1024 - kWorkerReservedFds - 1) + " connections"),
            std::string::npos)
      << w[0];
  EXPECT_NE(w[0].find("RLIMIT_NOFILE 1024"), std::string::npos) << w[0];
}

TEST(Capacity, CoresPastTheOpenFileLimitNamesTheRealCap) {
  CapacityInput in = fits();
  in.cores = 17000;
  in.max_connections = 17000;
  in.nofile = 16000;
  auto w = capacity_warnings(in);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[1].find("cores = 17000"), std::string::npos) << w[1];
  EXPECT_NE(w[1].find("at most " + std::to_string(16000 - kWorkerReservedFds - 1)),
            std::string::npos)
      << w[1];
}

TEST(Capacity, CoresAboveMaxConnectionsAloneAreAChoiceNotALimit) {
  CapacityInput in = fits();
  in.cores = 15000;  // more than max_connections, within the descriptors
  EXPECT_TRUE(capacity_warnings(in).empty());
}

TEST(Capacity, BacklogPastSomaxconnNamesIt) {
  CapacityInput in = fits();
  in.backlog = 65535;
  auto w = capacity_warnings(in);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("backlog = 65535"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("somaxconn = 4096"), std::string::npos) << w[0];
  in.somaxconn = -1;  // unknown: nothing claimed
  EXPECT_TRUE(capacity_warnings(in).empty());
}

}  // namespace
}  // namespace aiowsgi::master
