#include "common/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "common/unique_fd.h"

namespace aiowsgi {
namespace {

const sockaddr_in& as_in(const SocketAddress& a) {
  return *reinterpret_cast<const sockaddr_in*>(&a.storage);
}
const sockaddr_in6& as_in6(const SocketAddress& a) {
  return *reinterpret_cast<const sockaddr_in6*>(&a.storage);
}

std::string error_of(std::string_view text) {
  SocketAddress a;
  Status st = parse_address(text, &a);
  EXPECT_FALSE(st.ok()) << text << " parsed";
  EXPECT_EQ(st.code(), Status::Code::kConfig);
  return st.message();
}

TEST(Address, Ipv4HostPort) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("127.0.0.1:8000", &a).ok());
  EXPECT_EQ(a.family, SocketAddress::Family::kInet4);
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  EXPECT_EQ(as_in(a).sin_family, AF_INET);
  EXPECT_EQ(ntohs(as_in(a).sin_port), 8000);
  EXPECT_EQ(ntohl(as_in(a).sin_addr.s_addr), 0x7f000001u);
  EXPECT_EQ(a.text, "127.0.0.1:8000");
  EXPECT_EQ(format_sockaddr(a.addr(), a.length), "127.0.0.1:8000");
}

TEST(Address, HttpsSchemeMarksTls) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("https://127.0.0.1:8443", &a).ok());
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.family, SocketAddress::Family::kInet4);
  EXPECT_EQ(ntohs(as_in(a).sin_port), 8443);
  EXPECT_EQ(a.text, "https://127.0.0.1:8443");
  ASSERT_TRUE(parse_address("https://[::1]:8443", &a).ok());
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.family, SocketAddress::Family::kInet6);
  ASSERT_TRUE(parse_address("127.0.0.1:8443", &a).ok());
  EXPECT_FALSE(a.tls);
  (void)error_of("https://");
  (void)error_of("https://127.0.0.1");
}

TEST(Address, PortOnlyMeansAllIpv4Interfaces) {
  SocketAddress a;
  ASSERT_TRUE(parse_address(":9090", &a).ok());
  EXPECT_EQ(a.family, SocketAddress::Family::kInet4);
  EXPECT_EQ(as_in(a).sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(ntohs(as_in(a).sin_port), 9090);
  EXPECT_EQ(format_sockaddr(a.addr(), a.length), "0.0.0.0:9090");
}

TEST(Address, BracketedIpv6) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("[::1]:8443", &a).ok());
  EXPECT_EQ(a.family, SocketAddress::Family::kInet6);
  EXPECT_EQ(a.length, sizeof(sockaddr_in6));
  EXPECT_EQ(as_in6(a).sin6_family, AF_INET6);
  EXPECT_EQ(ntohs(as_in6(a).sin6_port), 8443);
  EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&as_in6(a).sin6_addr));
  EXPECT_EQ(format_sockaddr(a.addr(), a.length), "[::1]:8443");

  ASSERT_TRUE(parse_address("[::]:80", &a).ok());
  EXPECT_EQ(format_sockaddr(a.addr(), a.length), "[::]:80");
}

TEST(Address, HostPortOfInetAddressesOnly) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("127.0.0.1:8000", &a).ok());
  std::optional<HostPort> hp = host_port(a.addr(), a.length);
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, "8000");
  ASSERT_TRUE(parse_address("[::1]:8443", &a).ok());
  hp = host_port(a.addr(), a.length);
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "::1");  // no brackets: WSGI's SERVER_NAME / REMOTE_ADDR form
  EXPECT_EQ(hp->port, "8443");
  EXPECT_FALSE(host_port(a.addr(), 4).has_value());  // truncated
  ASSERT_TRUE(parse_address("unix:/run/app.sock", &a).ok());
  EXPECT_FALSE(host_port(a.addr(), a.length).has_value());
  EXPECT_FALSE(host_port(nullptr, 0).has_value());
}

TEST(Address, HostnameResolves) {
  // localhost is in /etc/hosts on every machine this builds on; no DNS traffic.
  SocketAddress a;
  ASSERT_TRUE(parse_address("localhost:8000", &a).ok());
  ASSERT_TRUE(a.family == SocketAddress::Family::kInet4 ||
              a.family == SocketAddress::Family::kInet6);
  std::string s = format_sockaddr(a.addr(), a.length);
  EXPECT_TRUE(s == "127.0.0.1:8000" || s == "[::1]:8000") << s;
}

TEST(Address, PortRange) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("127.0.0.1:0", &a).ok());  // ephemeral, used by tests
  EXPECT_EQ(ntohs(as_in(a).sin_port), 0);
  ASSERT_TRUE(parse_address("127.0.0.1:65535", &a).ok());
  EXPECT_EQ(ntohs(as_in(a).sin_port), 65535);
  EXPECT_NE(error_of("127.0.0.1:65536").find("port must be a number 0..65535"), std::string::npos);
  EXPECT_NE(error_of("127.0.0.1:-1").find("port must be"), std::string::npos);
  EXPECT_NE(error_of("127.0.0.1:80x").find("port must be"), std::string::npos);
  EXPECT_NE(error_of("127.0.0.1:+80").find("port must be"), std::string::npos);
  EXPECT_NE(error_of("[::1]:99999").find("port must be"), std::string::npos);
}

TEST(Address, MissingPort) {
  EXPECT_NE(error_of("127.0.0.1").find("missing port"), std::string::npos);
  EXPECT_NE(error_of("127.0.0.1:").find("missing port"), std::string::npos);
  EXPECT_NE(error_of("8000").find("missing port"), std::string::npos);
  EXPECT_NE(error_of("[::1]").find("missing port"), std::string::npos);
  EXPECT_NE(error_of("[::1]8000").find("missing port"), std::string::npos);
}

TEST(Address, Garbage) {
  EXPECT_NE(error_of("").find("empty address"), std::string::npos);
  EXPECT_NE(error_of("foo bar:80").find("bad host 'foo bar'"), std::string::npos);
  EXPECT_NE(error_of("a/b:80").find("bad host 'a/b'"), std::string::npos);
  EXPECT_NE(error_of("http://x:80").find("need brackets"), std::string::npos);
  EXPECT_NE(error_of("::1:80").find("need brackets"), std::string::npos);
  EXPECT_NE(error_of("[::1:80").find("missing ']'"), std::string::npos);
  EXPECT_NE(error_of("[zz]:80").find("is not an IPv6 address"), std::string::npos);
  EXPECT_NE(error_of("[]:80").find("empty IPv6"), std::string::npos);
}

TEST(Address, UnixPath) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("unix:/run/aiowsgi/app.sock", &a).ok());
  EXPECT_EQ(a.family, SocketAddress::Family::kUnix);
  EXPECT_EQ(a.unix_path, "/run/aiowsgi/app.sock");
  const auto* un = reinterpret_cast<const sockaddr_un*>(&a.storage);
  EXPECT_EQ(un->sun_family, AF_UNIX);
  EXPECT_STREQ(un->sun_path, "/run/aiowsgi/app.sock");
  EXPECT_EQ(a.length, offsetof(sockaddr_un, sun_path) + a.unix_path.size() + 1);
  EXPECT_EQ(format_sockaddr(a.addr(), a.length), "unix:/run/aiowsgi/app.sock");
}

TEST(Address, UnixPathLimits) {
  EXPECT_NE(error_of("unix:").find("needs a socket path"), std::string::npos);
  const size_t max = sizeof(sockaddr_un{}.sun_path) - 1;  // room for the NUL
  SocketAddress a;
  EXPECT_TRUE(parse_address("unix:/" + std::string(max - 1, 'a'), &a).ok());
  std::string msg = error_of("unix:/" + std::string(max, 'a'));
  EXPECT_NE(msg.find("longer than the system limit of " + std::to_string(max)), std::string::npos)
      << msg;
}

TEST(Address, ParseResetsPreviousResult) {
  SocketAddress a;
  ASSERT_TRUE(parse_address("unix:/tmp/a.sock", &a).ok());
  ASSERT_TRUE(parse_address("127.0.0.1:1", &a).ok());
  EXPECT_EQ(a.family, SocketAddress::Family::kInet4);
  EXPECT_TRUE(a.unix_path.empty());
  EXPECT_EQ(a.text, "127.0.0.1:1");
}

TEST(Address, FormatBoundSocket) {
  // Port 0 binds an ephemeral port; format_sockaddr must show the one the kernel chose.
  SocketAddress a;
  ASSERT_TRUE(parse_address("127.0.0.1:0", &a).ok());
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::bind(fd.get(), a.addr(), a.length), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  std::string s = format_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  ASSERT_EQ(s.rfind("127.0.0.1:", 0), 0u) << s;
  EXPECT_NE(s, "127.0.0.1:0");
  SocketAddress back;
  ASSERT_TRUE(parse_address(s, &back).ok());
  EXPECT_EQ(std::memcmp(&back.storage, &ss, len), 0);
}

TEST(Address, FormatUnixVariants) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  // Unnamed (socketpair end): only the family.
  EXPECT_EQ(format_sockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t)), "unix:");
  // Abstract namespace: leading NUL, length-delimited name.
  std::memcpy(un.sun_path, "\0abc", 4);
  socklen_t len = offsetof(sockaddr_un, sun_path) + 4;
  EXPECT_EQ(format_sockaddr(reinterpret_cast<sockaddr*>(&un), len), "unix:@abc");
  EXPECT_EQ(format_sockaddr(nullptr, 0), "(unknown)");
}

}  // namespace
}  // namespace aiowsgi
