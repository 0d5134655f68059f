#include "common/ip_networks.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace aiowsgi {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    if (text.find(':') == std::string_view::npos) return std::nullopt;  // [1.2.3.4] is no form
  }
  // inet_pton wants a NUL-terminated string (a NUL inside |text| would end it early: only
  // address characters pass); the longest IPv6 text is 45 characters.
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  for (char c : text) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == '.' || c == ':';
    if (!ok) return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], &v4, 4);
    a.v4 = true;
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) != 1) return std::nullopt;
  std::memcpy(a.bytes.data(), &v6, 16);
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  a.v4 = std::memcmp(a.bytes.data(), kMapped, 12) == 0;
  return a;
}

std::string IpAddress::text() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (v4) {
    inet_ntop(AF_INET, &bytes[12], buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpNetworks::Net> IpNetworks::parse_one(std::string_view spec) {
  size_t slash = spec.find('/');
  std::optional<IpAddress> base = IpAddress::parse(spec.substr(0, slash));
  if (!base) return std::nullopt;
  Net n{*base, 128};
  if (slash != std::string_view::npos) {
    std::string_view bits = spec.substr(slash + 1);
    int len = -1;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), len);
    const int max = base->v4 ? 32 : 128;
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || len < 0 ||
        len > max)
      return std::nullopt;
    n.prefix = base->v4 ? 96 + len : len;
  }
  return n;
}

Status IpNetworks::check(std::string_view spec) {
  if (spec == "*" || parse_one(spec)) return Status::Ok();
  return Status::Config("'" + std::string(spec) +
                        "' is not an IP address, a network (10.0.0.0/8, fd00::/8) or \"*\"");
}

Result<IpNetworks> IpNetworks::parse(const std::vector<std::string>& specs) {
  IpNetworks set;
  for (const std::string& s : specs) {
    if (s == "*") {
      set.any_ = true;
      continue;
    }
    std::optional<Net> n = parse_one(s);
    if (!n) return check(s);
    set.nets_.push_back(*n);
  }
  return set;
}

bool IpNetworks::contains(const IpAddress& a) const {
  if (any_) return true;
  for (const Net& n : nets_) {
    int full = n.prefix / 8, rest = n.prefix % 8;
    if (std::memcmp(a.bytes.data(), n.base.bytes.data(), static_cast<size_t>(full)) != 0) continue;
    if (rest != 0) {
      auto mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((a.bytes[full] & mask) != (n.base.bytes[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

bool IpNetworks::contains(std::string_view text) const {
  if (any_) return true;
  std::optional<IpAddress> a = IpAddress::parse(text);
  return a && contains(*a);
}

}  // namespace aiowsgi
