// Request-target helpers: see request_target.h.

#include "worker/protocol/request_target.h"

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {

using char_class::hex_value;
using char_class::is;
using char_class::kHex;

bool valid_authority(std::string_view a) {
  if (a.empty()) return false;
  size_t i = 0;
  if (a[0] == '[') {  // IP-literal: IPv6 (or IPvFuture) digits, dots and colons
    const size_t close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : a.substr(1, close - 1)) {
      if (!is(kHex, c) && c != ':' && c != '.' && c != 'v' && c != 'V') return false;
    }
    i = close + 1;
  } else {
    // reg-name / IPv4address: unreserved, pct-encoded and sub-delims characters.
    static constexpr std::string_view kHostPunct = "-._~%!$&'()*+,;=";
    while (i < a.size() && a[i] != ':') {
      const char c = a[i];
      const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!alnum && kHostPunct.find(c) == std::string_view::npos) return false;
      ++i;
    }
    if (i == 0) return false;  // an empty host is invalid for http(s) (RFC 9110 4.2.1)
  }
  if (i == a.size()) return true;
  if (a[i] != ':') return false;
  for (char c : a.substr(i + 1)) {
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
