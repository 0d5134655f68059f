// SocketAddress: a listen address as written in server.toml or on the command line.
// Parsed by the config loader (validation) and the master (binding). No Python.
//   "HOST:PORT"  "1.2.3.4:80"  ":PORT" (all IPv4 interfaces, like uWSGI)  "[::1]:PORT"
//   "localhost:PORT" (resolved with getaddrinfo, first result)  "unix:/path/to.sock"
//   and any of them after "https://": the listener serves TLS ([tls] in server.toml).
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace aiowsgi {

struct SocketAddress {
  enum class Family { kInet4, kInet6, kUnix };
  Family family = Family::kInet4;
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;       // as written
  bool tls = false;       // written with "https://"
  std::string unix_path;  // for kUnix
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

inline constexpr std::string_view kHttpsScheme = "https://";

// Parses |text|. Returns a Config status with a reason ("port must be 1..65535", ...) on error.
Status parse_address(std::string_view text, SocketAddress* out);

// The numeric host ("127.0.0.1", "::1", no brackets) and port ("8000") of an IPv4 or IPv6
// socket address, as WSGI's SERVER_NAME/REMOTE_ADDR want them; nullopt for other families
// or a truncated address.
struct HostPort {
  std::string host;
  std::string port;
};
std::optional<HostPort> host_port(const sockaddr* sa, socklen_t len);

// "127.0.0.1:8000", "[::1]:8000" or "unix:/path" for a bound socket's local address.
std::string format_sockaddr(const sockaddr* sa, socklen_t len);

}  // namespace aiowsgi
