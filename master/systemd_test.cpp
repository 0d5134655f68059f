// systemd integration: the notification datagrams on a real unix socket, the environment
// protocol of socket activation, and adopting real listening sockets (loopback, unix).
#include "master/systemd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/unit/scratch_dir.h"

namespace aiowsgi::master {
namespace {

// Each test's own folder: "aiowsgi-systemd-XXXXXX" under /tmp.
class ScratchDir : public aiowsgi::testing::ScratchDir {
 public:
  ScratchDir() : aiowsgi::testing::ScratchDir("aiowsgi-systemd") {}
};

// A listening socket as a service manager would pass it: bound by someone else, blocking,
// inheritable. Returns the fd; *name gets its "127.0.0.1:PORT".
int listening_tcp(std::string* name) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *name = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  return fd;
}

TEST(SystemdNotify, StatesForTransitions) {
  using S = MasterState;
  EXPECT_EQ(systemd_state_for(S::kStarting, S::kRunning),
            "READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(getpid()));
  EXPECT_EQ(systemd_state_for(S::kRunning, S::kReloading), "RELOADING=1\nSTATUS=reloading");
  EXPECT_EQ(systemd_state_for(S::kReloading, S::kRunning), "READY=1\nSTATUS=serving");
  EXPECT_EQ(systemd_state_for(S::kRunning, S::kStopping), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(systemd_state_for(S::kStarting, S::kKilling), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(systemd_state_for(S::kReloading, S::kStopping), "STOPPING=1\nSTATUS=stopping");
  // Said once: escalating a stop, or finishing it, sends nothing more.
  EXPECT_EQ(systemd_state_for(S::kStopping, S::kKilling), "");
  EXPECT_EQ(systemd_state_for(S::kStopping, S::kDone), "");
  EXPECT_EQ(systemd_state_for(S::kKilling, S::kDone), "");
}

TEST(SystemdNotify, SendsDatagramsToNotifySocketAndHidesIt) {
  ScratchDir dir;
  const std::string path = dir.path() + "/notify";
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);

  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  init_systemd_notify();
  EXPECT_EQ(getenv("NOTIFY_SOCKET"), nullptr);  // workers must not inherit it
  notify_systemd_transition(MasterState::kStarting, MasterState::kRunning);
  notify_systemd_transition(MasterState::kRunning, MasterState::kReloading);
  notify_systemd_transition(MasterState::kStopping, MasterState::kDone);  // nothing
  notify_systemd_transition(MasterState::kRunning, MasterState::kStopping);

  char buf[256];
  ssize_t n = ::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n), "READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(getpid()));
  n = ::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n).rfind("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=", 0), 0u);
  n = ::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n), "STOPPING=1\nSTATUS=stopping");
  EXPECT_LT(::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT), 0);

  // Without the variable, notifications go nowhere (the other tests' arbiters run after us).
  init_systemd_notify();
  notify_systemd("READY=1");
  EXPECT_LT(::recv(server.get(), buf, sizeof buf, MSG_DONTWAIT), 0);
}

TEST(SystemdListenFds, TakesFdsOnlyForThisProcessAndUnsetsTheVariables) {
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "2", 1);
  setenv("LISTEN_FDNAMES", "http:uwsgi", 1);
  EXPECT_EQ(take_systemd_listen_fds(), (std::vector<int>{3, 4}));
  EXPECT_EQ(getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDNAMES"), nullptr);

  setenv("LISTEN_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for someone else
  setenv("LISTEN_FDS", "1", 1);
  EXPECT_TRUE(take_systemd_listen_fds().empty());
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr);

  for (const char* bad : {"", "x", "-1", "1x", "99999"}) {
    setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    setenv("LISTEN_FDS", bad, 1);
    EXPECT_TRUE(take_systemd_listen_fds().empty()) << bad;
  }
  EXPECT_TRUE(take_systemd_listen_fds().empty());  // nothing set at all
}

TEST(SystemdListenFds, AdoptsMatchingSocketsAndBindsTheRest) {
  std::string http_name, uwsgi_name;
  int http_fd = listening_tcp(&http_name);
  int uwsgi_fd = listening_tcp(&uwsgi_name);
  config::ServerConfig server;
  server.listen = {http_name, "127.0.0.1:0"};  // the second is not inherited: bound here
  server.uwsgi_listen = {uwsgi_name};
  // Passed in another order than configured: matching is by address, not position.
  Result<ListenerSet> set = adopt_listeners(server, {uwsgi_fd, http_fd});
  ASSERT_TRUE(set.ok()) << set.status().message();
  const auto& out = set.value().current();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]->fd.get(), http_fd);
  EXPECT_EQ(out[0]->name, http_name);
  EXPECT_EQ(out[0]->bound_name, http_name);
  EXPECT_FALSE(out[0]->uwsgi);
  EXPECT_NE(out[1]->fd.get(), http_fd);
  EXPECT_NE(out[1]->fd.get(), uwsgi_fd);
  EXPECT_NE(out[1]->bound_name, "127.0.0.1:0");
  EXPECT_EQ(out[2]->fd.get(), uwsgi_fd);
  EXPECT_TRUE(out[2]->uwsgi);
  for (const auto& l : out) {
    EXPECT_TRUE(::fcntl(l->fd.get(), F_GETFL) & O_NONBLOCK) << l->name;
    EXPECT_TRUE(::fcntl(l->fd.get(), F_GETFD) & FD_CLOEXEC) << l->name;
  }
}

TEST(SystemdListenFds, AdoptsUnixSocketsWithoutOwningTheirFiles) {
  ScratchDir dir;
  const std::string path = dir.path() + "/app.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  config::ServerConfig server;
  server.uwsgi_listen = {"unix:" + path};
  {
    Result<ListenerSet> set = adopt_listeners(server, {fd});
    ASSERT_TRUE(set.ok()) << set.status().message();
    const auto& out = set.value().current();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0]->fd.get(), fd);
    EXPECT_TRUE(out[0]->uwsgi);
    EXPECT_EQ(out[0]->unix_path, "");  // the service manager's file: never removed by us
  }  // the set is destroyed: it removes the files it created, and this is not one
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(SystemdListenFds, AnUnclaimedInheritedSocketIsAnError) {
  std::string name;
  int fd = listening_tcp(&name);
  config::ServerConfig server;  // lists no address at all
  Result<ListenerSet> set = adopt_listeners(server, {fd});
  ASSERT_FALSE(set.ok());
  const Status& s = set.status();
  EXPECT_NE(s.message().find("inherited socket " + name), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("matches no [server] listen"), std::string::npos) << s.message();
}

TEST(SystemdListenFds, ANonListeningSocketIsAnError) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // never listen()ed
  config::ServerConfig server;
  server.listen = {"127.0.0.1:0"};
  Result<ListenerSet> set = adopt_listeners(server, {fd});
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("not a listening stream socket"), std::string::npos)
      << set.status().message();

  int dgram = ::socket(AF_INET, SOCK_DGRAM, 0);
  set = adopt_listeners(server, {dgram});
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("not a listening stream socket"), std::string::npos)
      << set.status().message();
}

}  // namespace
}  // namespace aiowsgi::master
