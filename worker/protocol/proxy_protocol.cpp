#include "worker/protocol/proxy_protocol.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace aiowsgi::worker {

namespace {

// Spec 2.2: the v2 signature, chosen so that it cannot begin a valid HTTP request.
constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";
// Spec 2.1: "a receiver must not try to read more than 107 characters".
constexpr size_t kV1Max = 107;

ProxyParse fail(std::string_view* reason, std::string_view why) {
  *reason = why;
  return ProxyParse::kError;
}

std::optional<uint16_t> parse_port(std::string_view s) {
  // Spec 2.1: decimal 0..65535 without leading zeros ("0" itself is allowed).
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint32_t>(c - '0');
  }
  if (n > 65535) return std::nullopt;
  return static_cast<uint16_t>(n);
}

ProxyParse parse_v1(const char* data, size_t len, size_t* consumed, ProxyHeader* out,
                    std::string_view* reason) {
  std::string_view in(data, std::min(len, kV1Max));
  // The first CR or LF must begin the CRLF that ends the line: a stray one can never become
  // it, and judging the line the same way whatever follows keeps a header split across reads
  // parsing as it does whole.
  const size_t crlf = in.find_first_of("\r\n");
  if (crlf == std::string_view::npos || crlf + 1 == in.size()) {
    if (in.size() >= kV1Max) return fail(reason, "PROXY v1 line longer than 107 bytes");
    if (crlf != std::string_view::npos && in[crlf] == '\n')
      return fail(reason, "PROXY v1 line with a stray LF");
    return ProxyParse::kIncomplete;
  }
  if (in[crlf] != '\r' || in[crlf + 1] != '\n')
    return fail(reason, "PROXY v1 line with a stray CR or LF");
  std::string_view line = in.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  std::string_view fields[5];
  size_t n = 0;
  while (n < 5) {
    size_t sp = line.find(' ');
    fields[n++] = line.substr(0, sp);
    if (sp == std::string_view::npos) {
      line = {};
      break;
    }
    line = line.substr(sp + 1);
  }
  if (n >= 1 && fields[0] == "UNKNOWN") {  // spec 2.1: the rest of the line is ignored
    *out = ProxyHeader{};
    *consumed = crlf + 2;
    return ProxyParse::kDone;
  }
  if (n != 5 || !line.empty()) return fail(reason, "PROXY v1 line without 5 fields");
  const bool v4 = fields[0] == "TCP4";
  if (!v4 && fields[0] != "TCP6") return fail(reason, "PROXY v1 protocol not TCP4/TCP6/UNKNOWN");
  std::optional<IpAddress> src = IpAddress::parse(fields[1]);
  std::optional<IpAddress> dst = IpAddress::parse(fields[2]);
  // IpAddress::parse also takes "[::1]": the v1 line has bare addresses only.
  if (!src || !dst || src->v4 != v4 || dst->v4 != v4 || fields[1].front() == '[' ||
      fields[2].front() == '[')
    return fail(reason, "PROXY v1 address does not match its protocol");
  std::optional<uint16_t> sport = parse_port(fields[3]);
  if (!sport || !parse_port(fields[4])) return fail(reason, "PROXY v1 port not 0..65535");
  out->keeps_peer = false;
  out->source = *src;
  out->source_port = *sport;
  *consumed = crlf + 2;
  return ProxyParse::kDone;
}

ProxyParse parse_v2(const unsigned char* d, size_t len, size_t* consumed, ProxyHeader* out,
                    std::string_view* reason) {
  if (len < 16) return ProxyParse::kIncomplete;
  const unsigned ver = d[12] >> 4, cmd = d[12] & 0x0f;
  if (ver != 2) return fail(reason, "PROXY v2 version is not 2");
  if (cmd > 1) return fail(reason, "PROXY v2 command is neither LOCAL nor PROXY");
  const unsigned family = d[13] >> 4, transport = d[13] & 0x0f;
  const size_t body = (size_t{d[14]} << 8) | d[15];
  if (len < 16 + body) return ProxyParse::kIncomplete;
  *out = ProxyHeader{};
  // Spec 2.2: LOCAL "must" be accepted whatever the family, and its addresses ignored.
  if (cmd == 0) {
    *consumed = 16 + body;
    return ProxyParse::kDone;
  }
  if (family > 3 || transport > 2) return fail(reason, "PROXY v2 unknown family or transport");
  const unsigned char* a = d + 16;
  if (family == 1) {  // AF_INET: src(4) dst(4) sport(2) dport(2)
    if (body < 12) return fail(reason, "PROXY v2 IPv4 block shorter than 12 bytes");
    out->source.bytes = {};
    out->source.bytes[10] = out->source.bytes[11] = 0xff;
    std::memcpy(&out->source.bytes[12], a, 4);
    out->source.v4 = true;
    out->source_port = static_cast<uint16_t>((a[8] << 8) | a[9]);
    out->keeps_peer = false;
  } else if (family == 2) {  // AF_INET6: src(16) dst(16) sport(2) dport(2)
    if (body < 36) return fail(reason, "PROXY v2 IPv6 block shorter than 36 bytes");
    std::memcpy(out->source.bytes.data(), a, 16);
    // An IPv4-mapped source is the same client as its IPv4 form (IpAddress's rule).
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    out->source.v4 = std::memcmp(a, kMapped, 12) == 0;
    out->source_port = static_cast<uint16_t>((a[32] << 8) | a[33]);
    out->keeps_peer = false;
  }
  // UNSPEC and AF_UNIX: spec 2.2 says to keep the connection's own addresses.
  *consumed = 16 + body;
  return ProxyParse::kDone;
}

}  // namespace

ProxyParse parse_proxy_header(const char* data, size_t len, size_t* consumed, ProxyHeader* out,
                              std::string_view* reason) {
  *consumed = 0;
  if (len == 0) return ProxyParse::kIncomplete;
  const auto* d = reinterpret_cast<const unsigned char*>(data);
  if (d[0] == kV2Signature[0]) {
    size_t n = std::min(len, sizeof kV2Signature);
    if (std::memcmp(d, kV2Signature, n) != 0) return fail(reason, "not a PROXY v2 signature");
    if (len < sizeof kV2Signature) return ProxyParse::kIncomplete;
    return parse_v2(d, len, consumed, out, reason);
  }
  size_t n = std::min(len, kV1Prefix.size());
  if (std::string_view(data, n) != kV1Prefix.substr(0, n))
    return fail(reason, "no PROXY protocol header");
  if (len < kV1Prefix.size()) return ProxyParse::kIncomplete;
  return parse_v1(data, len, consumed, out, reason);
}

}  // namespace aiowsgi::worker
