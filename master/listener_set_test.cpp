// ListenerSet: opening a configuration's addresses (undoing a partial bind) and the reload
// diff (keep, bind, close on commit, restore on rollback), on real loopback sockets.
#include "master/listener_set.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "tests/unit/scratch_dir.h"

namespace aiowsgi::master {
namespace {

// Each test's own folder: "aiowsgi-listener-set-XXXXXX" under /tmp.
class ScratchDir : public aiowsgi::testing::ScratchDir {
 public:
  ScratchDir() : aiowsgi::testing::ScratchDir("aiowsgi-listener-set") {}
};

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(ListenerSet, OpensBothKindsAndUndoesAPartialBind) {
  ScratchDir dir;
  config::ServerConfig server;
  server.listen = {"127.0.0.1:0"};
  server.uwsgi_listen = {"unix:" + dir.path() + "/u.sock"};
  {
    Result<ListenerSet> set = ListenerSet::open(server);
    ASSERT_TRUE(set.ok()) << set.status().message();
    const auto& out = set.value().current();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_FALSE(out[0]->uwsgi);
    EXPECT_TRUE(out[1]->uwsgi);
    EXPECT_TRUE(exists(dir.path() + "/u.sock"));
    std::vector<ListenSocket> sockets = set.value().worker_sockets();
    ASSERT_EQ(sockets.size(), 2u);
    EXPECT_EQ(sockets[0].fd, out[0]->fd.get());
    EXPECT_EQ(sockets[1].name, "unix:" + dir.path() + "/u.sock");
    EXPECT_TRUE(sockets[1].uwsgi);
  }
  // The set is gone: so is the socket file it created.
  EXPECT_FALSE(exists(dir.path() + "/u.sock"));

  // The second address is taken: the first one's socket file must not be left behind.
  Result<Listener> taken = bind_listener(
      [] {
        SocketAddress a;
        EXPECT_TRUE(parse_address("127.0.0.1:0", &a).ok());
        return a;
      }(),
      BindOptions{});
  ASSERT_TRUE(taken.ok());
  server.listen = {"unix:" + dir.path() + "/first.sock", taken.value().bound_name};
  server.uwsgi_listen.clear();
  Result<ListenerSet> set = ListenerSet::open(server);
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find(taken.value().bound_name), std::string::npos)
      << set.status().message();
  EXPECT_FALSE(exists(dir.path() + "/first.sock"));

  // An unparsable address names itself too.
  server.listen = {"nonsense"};
  set = ListenerSet::open(server);
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("cannot bind nonsense"), std::string::npos)
      << set.status().message();
}

TEST(ListenerSet, ReloadKeepsBindsAndClosesOnCommit) {
  ScratchDir dir;
  const std::string a_sock = dir.path() + "/a.sock", b_sock = dir.path() + "/b.sock";
  config::ServerConfig old;
  old.listen = {"unix:" + a_sock, "unix:" + b_sock};
  Result<ListenerSet> opened = ListenerSet::open(old);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  ListenerSet set = std::move(opened.value());
  auto kept = set.current()[0];
  auto removed = set.current()[1];
  int removed_fd = removed->fd.get();

  config::ServerConfig fresh = old;
  fresh.listen = {"unix:" + a_sock, "unix:" + a_sock};  // listed twice: one socket
  fresh.uwsgi_listen = {"unix:" + b_sock + ".u"};
  ASSERT_TRUE(set.change(fresh, old).ok());
  ASSERT_EQ(set.current().size(), 2u);
  EXPECT_EQ(set.current()[0], kept);
  EXPECT_TRUE(set.current()[1]->uwsgi);
  EXPECT_TRUE(exists(b_sock + ".u"));
  // Until the reload completes, the old workers keep the removed socket; a new one must not.
  EXPECT_EQ(set.removed_fds(), std::vector<int>{removed_fd});
  EXPECT_TRUE(exists(b_sock));

  set.commit();
  EXPECT_TRUE(set.removed_fds().empty());
  EXPECT_FALSE(exists(b_sock));
  removed.reset();  // the last owner: the socket closes
  EXPECT_FALSE(is_open(removed_fd));
  EXPECT_TRUE(exists(a_sock));
}

TEST(ListenerSet, FailedReloadRestoresThePreviousSockets) {
  ScratchDir dir;
  const std::string a_sock = dir.path() + "/a.sock";
  config::ServerConfig old;
  old.listen = {"unix:" + a_sock};
  Result<ListenerSet> opened = ListenerSet::open(old);
  ASSERT_TRUE(opened.ok());
  ListenerSet set = std::move(opened.value());
  auto before = set.current();

  config::ServerConfig fresh = old;
  fresh.listen = {"unix:" + dir.path() + "/new.sock"};
  ASSERT_TRUE(set.change(fresh, old).ok());
  EXPECT_TRUE(exists(dir.path() + "/new.sock"));
  set.rollback();
  EXPECT_EQ(set.current(), before);
  EXPECT_FALSE(exists(dir.path() + "/new.sock"));
  EXPECT_TRUE(exists(a_sock));

  // A change that cannot bind changes nothing and leaves no file behind.
  fresh.listen = {"unix:" + a_sock, "unix:" + dir.path() + "/x.sock", "unix:/nonexistent/dir/s"};
  Status s = set.change(fresh, old);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/dir/s"), std::string::npos) << s.message();
  EXPECT_EQ(set.current(), before);
  EXPECT_FALSE(exists(dir.path() + "/x.sock"));
  EXPECT_TRUE(set.removed_fds().empty());
}

}  // namespace
}  // namespace aiowsgi::master
