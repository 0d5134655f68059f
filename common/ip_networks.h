// IpNetworks: a set of IPv4/IPv6 networks ("10.0.0.0/8", "::1", "*") that an address is
// checked against: the peers whose forwarding headers and PROXY protocol header are believed
// ([server] forwarded_allow_ips). Parsed by the master when the config is loaded and again by
// each worker; pure, no Python, no system calls.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace aiowsgi {

// An address in the 16-byte IPv6 form; an IPv4 address is held IPv4-mapped (::ffff:a.b.c.d),
// so that "127.0.0.1" also matches a peer that reaches a dual-stack socket as ::ffff:127.0.0.1.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;  // written as IPv4 (or IPv4-mapped)

  // "10.1.2.3", "::1", "[::1]" (the bracket form X-Forwarded-For and Forwarded use); null for
  // anything else (ports, zone ids, host names).
  static std::optional<IpAddress> parse(std::string_view text);
  // The canonical text (inet_ntop's): IPv4-mapped addresses as plain IPv4.
  std::string text() const;
  bool operator==(const IpAddress&) const = default;
};

class IpNetworks {
 public:
  // Each element is an address, an address/prefix-length (CIDR) or "*" (every peer). An empty
  // list trusts nobody. Fails naming the first element that is none of these.
  static Result<IpNetworks> parse(const std::vector<std::string>& specs);
  // One element alone: what the config loader checks each value with.
  static Status check(std::string_view spec);

  bool contains(const IpAddress& a) const;
  // |text| as IpAddress::parse reads it; false for anything unparsable.
  bool contains(std::string_view text) const;
  bool empty() const { return !any_ && nets_.empty(); }

 private:
  struct Net {
    IpAddress base;
    int prefix = 128;  // bits of |base| that must match, in the 128-bit form
  };
  static std::optional<Net> parse_one(std::string_view spec);
  bool any_ = false;
  std::vector<Net> nets_;
};

}  // namespace aiowsgi
