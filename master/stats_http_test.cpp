// The /metrics endpoint's request routing, and the adoption of a stats socket an upgrade
// passed from the old master.
#include "master/stats_http.h"

#include <ev.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/scratch_dir.h"

namespace aiowsgi::master {
namespace {

TEST(StatsHttp, RoutesOnlyGetMetrics) {
  EXPECT_EQ(route_metrics_request("GET /metr"), MetricsRoute::kIncomplete);
  EXPECT_EQ(route_metrics_request("GET /metrics HTTP/1.1\r\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("GET /metrics?x=1 HTTP/1.0\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("HEAD /metrics HTTP/1.1\r\n"), MetricsRoute::kMetricsHead);
  EXPECT_EQ(route_metrics_request("POST /metrics HTTP/1.1\r\n"), MetricsRoute::kBadMethod);
  EXPECT_EQ(route_metrics_request("GET / HTTP/1.1\r\n"), MetricsRoute::kNotFound);
  EXPECT_EQ(route_metrics_request("garbage\r\n"), MetricsRoute::kBad);
  EXPECT_EQ(route_metrics_request(std::string(9000, 'x')), MetricsRoute::kBad);
}

// A listening TCP socket on 127.0.0.1, as the old master bound it; *name is "127.0.0.1:PORT".
UniqueFd listening_tcp(std::string* name) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd.get(), 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *name = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  return fd;
}

TEST(StatsHttp, AdoptsTheInheritedSocketOfItsAddressAndLeavesTheOthers) {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  std::string stats_name;
  std::string other_name;
  std::vector<UniqueFd> inherited;
  inherited.push_back(listening_tcp(&other_name));
  inherited.push_back(listening_tcp(&stats_name));
  const int stats_fd = inherited[1].get();
  const int other_fd = inherited[0].get();
  {
    StatsHttp http(
        loop, [] { return std::string("{}"); }, [] { return std::string(); });
    // Bound by the old master and still held here: a fresh bind would fail.
    Status s = http.bind(stats_name, StatsHttp::Kind::kStats, 16, &inherited);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(http.listen_fds(), std::vector<int>({stats_fd}));
    ASSERT_EQ(inherited.size(), 1u);
    EXPECT_EQ(inherited[0].get(), other_fd);
    // An address no inherited socket has is bound as usual.
    s = http.bind("127.0.0.1:0", StatsHttp::Kind::kMetrics, 16, &inherited);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(http.listen_fds().size(), 2u);
    EXPECT_EQ(inherited.size(), 1u);
    http.hand_over();  // a newer master serves them: this one lets go
    EXPECT_TRUE(http.listen_fds().empty());
  }
  ev_loop_destroy(loop);
}

TEST(StatsHttp, AnAdoptedUnixSocketFileIsNeverRemovedHere) {
  aiowsgi::testing::ScratchDir dir("aiowsgi-stats-http");
  const std::string path = dir.path() + "/stats.sock";
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd.get(), 16), 0);
  std::vector<UniqueFd> inherited;
  inherited.push_back(std::move(fd));
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  {
    StatsHttp http(
        loop, [] { return std::string("{}"); }, [] { return std::string(); });
    Status s = http.bind("unix:" + path, StatsHttp::Kind::kStats, 16, &inherited);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(inherited.empty());
  }  // the old master (or a new one that fails to start) may still serve that file
  EXPECT_TRUE(std::filesystem::exists(path));
  ev_loop_destroy(loop);
}

TEST(StatsHttp, AHandedOverSocketFileIsLeftToTheNewMaster) {
  aiowsgi::testing::ScratchDir dir("aiowsgi-stats-http");
  const std::string path = dir.path() + "/stats.sock";
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  {
    StatsHttp http(
        loop, [] { return std::string("{}"); }, [] { return std::string(); });
    Status s = http.bind("unix:" + path, StatsHttp::Kind::kStats, 16);
    ASSERT_TRUE(s.ok()) << s.message();
    http.hand_over();
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  {
    std::filesystem::remove(path);
    StatsHttp http(
        loop, [] { return std::string("{}"); }, [] { return std::string(); });
    Status s = http.bind("unix:" + path, StatsHttp::Kind::kStats, 16);
    ASSERT_TRUE(s.ok()) << s.message();
  }  // not handed over: the file it created goes with it
  EXPECT_FALSE(std::filesystem::exists(path));
  ev_loop_destroy(loop);
}

}  // namespace
}  // namespace aiowsgi::master
