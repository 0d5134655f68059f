// Request-target helpers: see request_target.h.

#include "worker/protocol/request_target.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {

using char_class::hex_value;
using char_class::is;
using char_class::kHex;

namespace {

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// unreserved / sub-delims (RFC 3986 2.2, 2.3).
bool is_host_char(char c) {
  static constexpr std::string_view kPunct = "-._~!$&'()*+,;=";
  return is_alnum(c) || kPunct.find(c) != std::string_view::npos;
}

// The inside of an IP-literal (RFC 3986 3.2.2): IPv6address (checked by inet_pton, which
// takes exactly that grammar, dotted IPv4 tail included) or
// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
bool valid_ip_literal(std::string_view s) {
  if (!s.empty() && (s[0] == 'v' || s[0] == 'V')) {
    size_t i = 1;
    while (i < s.size() && is(kHex, s[i])) ++i;
    if (i == 1 || i + 1 >= s.size() || s[i] != '.') return false;
    for (char c : s.substr(i + 1)) {
      if (!is_host_char(c) && c != ':') return false;
    }
    return true;
  }
  char buf[INET6_ADDRSTRLEN];
  if (s.size() >= sizeof buf) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  in6_addr addr;
  return inet_pton(AF_INET6, buf, &addr) == 1;
}

}  // namespace

bool valid_authority(std::string_view a) {
  if (a.empty()) return false;
  size_t i = 0;
  if (a[0] == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos || !valid_ip_literal(a.substr(1, close - 1))) {
      return false;
    }
    i = close + 1;
  } else {
    // reg-name / IPv4address: unreserved, pct-encoded and sub-delims characters.
    while (i < a.size() && a[i] != ':') {
      if (a[i] == '%') {
        if (i + 2 >= a.size() || !is(kHex, a[i + 1]) || !is(kHex, a[i + 2])) return false;
        i += 3;
        continue;
      }
      if (!is_host_char(a[i])) return false;
      ++i;
    }
    if (i == 0) return false;  // an empty host is invalid for http(s) (RFC 9110 4.2.1)
  }
  if (i == a.size()) return true;
  if (a[i] != ':') return false;
  for (char c : a.substr(i + 1)) {  // port = *DIGIT: "host:" is valid
    if (c < '0' || c > '9') return false;
  }
  return true;
}

void percent_decode(std::string_view in, std::string* out) {
  out->reserve(out->size() + in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && is(kHex, in[i + 1]) && is(kHex, in[i + 2])) {
      out->push_back(static_cast<char>(hex_value(in[i + 1]) << 4 | hex_value(in[i + 2])));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
}

}  // namespace aiowsgi::worker
