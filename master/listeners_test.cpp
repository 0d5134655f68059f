// Listeners: real binds on loopback (port 0) and unix sockets in a temporary folder.
#include "master/listeners.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace aiowsgi::master {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/aiowsgi-listeners-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

SocketAddress parse(const std::string& text) {
  SocketAddress a;
  Status s = parse_address(text, &a);
  EXPECT_TRUE(s.ok()) << s.message();
  return a;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

void expect_listening_socket(int fd) {
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
  EXPECT_EQ(v, 1);
}

TEST(Listeners, Ipv4PortZeroReportsTheRealPort) {
  Result<Listener> bound = bind_listener(parse("127.0.0.1:0"), BindOptions{});
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  Listener& l = bound.value();
  expect_listening_socket(l.fd.get());
  EXPECT_EQ(l.name, "127.0.0.1:0");
  ASSERT_EQ(l.bound_name.rfind("127.0.0.1:", 0), 0u) << l.bound_name;
  int port = std::stoi(l.bound_name.substr(10));
  EXPECT_GT(port, 0);
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(getsockopt(l.fd.get(), SOL_SOCKET, SO_REUSEADDR, &v, &len), 0);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(getsockopt(l.fd.get(), SOL_SOCKET, SO_REUSEPORT, &v, &len), 0);
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(l.unix_path.empty());

  // A client can connect: it really listens where it says.
  UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);

  // The same port again fails with an error that names the address.
  Result<Listener> again = bind_listener(parse(l.bound_name), BindOptions{});
  ASSERT_FALSE(again.ok());
  const Status& s = again.status();
  EXPECT_NE(s.message().find("cannot bind " + l.bound_name), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Address already in use"), std::string::npos) << s.message();
}

TEST(Listeners, ReusePortLetsTwoSocketsShareAPort) {
  BindOptions o;
  o.reuse_port = true;
  Result<Listener> a = bind_listener(parse("127.0.0.1:0"), o);
  ASSERT_TRUE(a.ok());
  Result<Listener> b = bind_listener(parse(a.value().bound_name), o);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(a.value().bound_name, b.value().bound_name);
}

TEST(Listeners, Ipv6LoopbackOrAClearError) {
  Result<Listener> bound = bind_listener(parse("[::1]:0"), BindOptions{});
  const Status& s = bound.status();
  if (bound.ok()) {
    const Listener& l = bound.value();
    expect_listening_socket(l.fd.get());
    EXPECT_EQ(l.bound_name.rfind("[::1]:", 0), 0u) << l.bound_name;
    int v = 0;
    socklen_t len = sizeof v;
    ASSERT_EQ(getsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), 0);
    EXPECT_EQ(v, 1);
  } else {
    // No IPv6 on this machine: the error must still say which address failed and why.
    EXPECT_EQ(s.code(), Status::Code::kIo);
    EXPECT_NE(s.message().find("[::1]:0"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(": "), std::string::npos) << s.message();
  }
}

TEST(Listeners, UnixSocketStaleFileLiveServerAndCleanup) {
  TempDir dir;
  std::string path = dir.path() + "/app.sock";
  {
    // A stale socket file, as a crashed server leaves it: bound, then closed.
    UniqueFd stale(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    SocketAddress a = parse("unix:" + path);
    ASSERT_EQ(bind(stale.get(), a.addr(), a.length), 0);
  }
  ASSERT_TRUE(exists(path));

  Result<Listener> bound = bind_listener(parse("unix:" + path), BindOptions{});
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  Listener& l = bound.value();
  expect_listening_socket(l.fd.get());
  EXPECT_EQ(l.unix_path, path);
  EXPECT_EQ(l.bound_name, "unix:" + path);

  // While it listens, a second bind must not steal the path.
  Result<Listener> second = bind_listener(parse("unix:" + path), BindOptions{});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another server is listening"), std::string::npos)
      << second.status().message();
  EXPECT_TRUE(exists(path));

  std::vector<Listener> all;
  all.push_back(std::move(l));
  remove_socket_files(all);
  EXPECT_FALSE(exists(path));
}

TEST(Listeners, UnixSocketModeIsSetBeforeListening) {
  TempDir dir;
  std::string path = dir.path() + "/app.sock";
  BindOptions options;
  options.unix_mode = 0666;
  // A umask that would leave others without write permission (nginx could not connect).
  mode_t old = umask(0077);
  Result<Listener> l = bind_listener(parse("unix:" + path), options);
  umask(old);
  ASSERT_TRUE(l.ok()) << l.status().message();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  remove_socket_file(l.value());
}

TEST(Listeners, UnixPathThatIsARegularFileIsNotDeleted) {
  TempDir dir;
  std::string path = dir.path() + "/data.txt";
  UniqueFd f(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(f);
  Result<Listener> l = bind_listener(parse("unix:" + path), BindOptions{});
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("not a socket"), std::string::npos) << l.status().message();
  EXPECT_TRUE(exists(path));
}

TEST(Listeners, RemoveSocketFilesSparesAReplacedFile) {
  TempDir dir;
  std::string path = dir.path() + "/app.sock";
  Result<Listener> l = bind_listener(parse("unix:" + path), BindOptions{});
  ASSERT_TRUE(l.ok());
  // Someone else's socket now lives at the path (e.g. a new master started meanwhile).
  ASSERT_EQ(unlink(path.c_str()), 0);
  Result<Listener> other = bind_listener(parse("unix:" + path), BindOptions{});
  ASSERT_TRUE(other.ok());
  std::vector<Listener> mine;
  mine.push_back(std::move(l.value()));
  remove_socket_files(mine);
  EXPECT_TRUE(exists(path));
}

}  // namespace
}  // namespace aiowsgi::master
