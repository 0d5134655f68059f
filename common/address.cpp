#include "common/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <string>

namespace aiowsgi {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::string_view kExpectedForms = "expected HOST:PORT, :PORT, [IPv6]:PORT or unix:/path";

// Ports are decimal digits only: "80", not "+80", "0x50" or " 80" (from_chars alone would
// accept none of the latter either, but an empty or over-long string needs its own message).
Status parse_port(std::string_view s, uint16_t* port) {
  if (s.empty()) return Status::Config("missing port (" + std::string(kExpectedForms) + ")");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value > 65535) {
    return Status::Config("port must be a number 0..65535, got '" + std::string(s) + "'");
  }
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

// Characters a DNS name may hold (RFC 1123 labels plus '_', which resolvers accept in
// practice). Rejecting anything else up front keeps garbage from reaching the resolver.
bool is_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status parse_unix(std::string_view text, SocketAddress* out) {
  std::string_view path = text.substr(kUnixPrefix.size());
  if (path.empty()) return Status::Config("unix: needs a socket path, e.g. unix:/run/app.sock");
  sockaddr_un un{};
  // sun_path must also hold the terminating NUL that bind() and tools like ss expect.
  if (path.size() >= sizeof un.sun_path) {
    return Status::Config("unix socket path is " + std::to_string(path.size()) +
                          " bytes, longer than the system limit of " +
                          std::to_string(sizeof un.sun_path - 1));
  }
  if (path.find('\0') != std::string_view::npos) {
    return Status::Config("unix socket path contains a NUL byte");
  }
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  out->family = SocketAddress::Family::kUnix;
  out->storage = sockaddr_storage{};
  std::memcpy(&out->storage, &un, sizeof un);
  out->length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  out->unix_path = std::string(path);
  return Status::Ok();
}

void set_inet4(const in_addr& a, uint16_t port, SocketAddress* out) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr = a;
  out->family = SocketAddress::Family::kInet4;
  out->storage = sockaddr_storage{};
  std::memcpy(&out->storage, &sin, sizeof sin);
  out->length = sizeof sin;
}

void set_inet6(const sockaddr_in6& src, uint16_t port, SocketAddress* out) {
  sockaddr_in6 sin6 = src;
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  out->family = SocketAddress::Family::kInet6;
  out->storage = sockaddr_storage{};
  std::memcpy(&out->storage, &sin6, sizeof sin6);
  out->length = sizeof sin6;
}

// Resolves |host| (a name, or an IPv6 literal with an optional %scope when |numeric|).
// Takes the first result, as documented in address.h.
Status resolve(const std::string& host, uint16_t port, bool numeric, SocketAddress* out) {
  addrinfo hints{};
  hints.ai_family = numeric ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    if (numeric) return Status::Config("'" + host + "' is not an IPv6 address");
    return Status::Config("cannot resolve host '" + host + "': " + gai_strerror(rc));
  }
  Status st = Status::Config("host '" + host + "' has no IPv4 or IPv6 address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      set_inet4(reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, port, out);
      st = Status::Ok();
      break;
    }
    if (ai->ai_family == AF_INET6) {
      set_inet6(*reinterpret_cast<const sockaddr_in6*>(ai->ai_addr), port, out);
      st = Status::Ok();
      break;
    }
  }
  freeaddrinfo(res);
  return st;
}

}  // namespace

Status parse_address(std::string_view text, SocketAddress* out) {
  out->text = std::string(text);
  out->unix_path.clear();
  out->tls = text.substr(0, kHttpsScheme.size()) == kHttpsScheme;
  if (out->tls) text.remove_prefix(kHttpsScheme.size());
  if (text.empty()) return Status::Config("empty address (" + std::string(kExpectedForms) + ")");
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) return parse_unix(text, out);

  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Status::Config("missing ']' after IPv6 address (" + std::string(kExpectedForms) + ")");
    }
    std::string host(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Status::Config("missing port after ']' (" + std::string(kExpectedForms) + ")");
    }
    uint16_t port = 0;
    if (Status st = parse_port(rest.substr(1), &port); !st.ok()) return st;
    if (host.empty()) return Status::Config("empty IPv6 address in []");
    return resolve(host, port, /*numeric=*/true, out);
  }

  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::Config("missing port (" + std::string(kExpectedForms) + ")");
  }
  std::string_view host = text.substr(0, colon);
  if (host.find(':') != std::string_view::npos) {
    return Status::Config("IPv6 addresses need brackets, e.g. [::1]:8000");
  }
  uint16_t port = 0;
  if (Status st = parse_port(text.substr(colon + 1), &port); !st.ok()) return st;
  if (host.empty()) {
    // ":PORT" means every IPv4 interface, as in uWSGI.
    in_addr any{};
    any.s_addr = htonl(INADDR_ANY);
    set_inet4(any, port, out);
    return Status::Ok();
  }
  in_addr a4{};
  if (inet_pton(AF_INET, std::string(host).c_str(), &a4) == 1) {
    set_inet4(a4, port, out);
    return Status::Ok();
  }
  if (!is_hostname(host)) {
    return Status::Config("bad host '" + std::string(host) + "' (" + std::string(kExpectedForms) +
                          ")");
  }
  return resolve(std::string(host), port, /*numeric=*/false, out);
}

std::optional<HostPort> host_port(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
    return HostPort{buf, std::to_string(ntohs(sin.sin_port))};
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    inet_ntop(AF_INET6, &sin6.sin6_addr, buf, sizeof buf);
    return HostPort{buf, std::to_string(ntohs(sin6.sin6_port))};
  }
  return std::nullopt;
}

std::string format_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return "(unknown)";
  switch (sa->sa_family) {
    case AF_INET:
    case AF_INET6: {
      std::optional<HostPort> hp = host_port(sa, len);
      if (!hp) break;
      // Appended, not "[" + ... (see the unix case below).
      std::string out = sa->sa_family == AF_INET6 ? "[" : "";
      out.append(hp->host).append(sa->sa_family == AF_INET6 ? "]:" : ":").append(hp->port);
      return out;
    }
    case AF_UNIX: {
      sockaddr_un un{};
      std::memcpy(&un, sa, std::min<size_t>(len, sizeof un));
      size_t n = std::min<size_t>(len, sizeof un) - offsetof(sockaddr_un, sun_path);
      if (n == 0) return "unix:";  // unnamed socket (e.g. a socketpair end)
      if (un.sun_path[0] == '\0') {
        // Abstract namespace: the name is every byte after the leading NUL, not NUL-terminated.
        // Appending to a prefix string (not "prefix" + std::string(...)): GCC 12 at -O3
        // reports a false -Wrestrict overlap in the inlined operator+(const char*, string&&).
        std::string out = "unix:@";
        out.append(un.sun_path + 1, n - 1);
        return out;
      }
      std::string out = "unix:";
      out.append(un.sun_path, strnlen(un.sun_path, n));
      return out;
    }
    default:
      break;
  }
  return "(family " + std::to_string(sa->sa_family) + ")";
}

}  // namespace aiowsgi
