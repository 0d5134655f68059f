// ProxyProtocol: the PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and
// 2) a load balancer (HAProxy send-proxy, AWS NLB) sends first on each connection to say whom
// the connection is really from. Workers, before the first request head of a connection on
// a listener with [server] proxy_protocol; pure, no Python, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/ip_networks.h"

namespace aiowsgi::worker {

struct ProxyHeader {
  // LOCAL (v2; v1 "UNKNOWN"), or an address family this server does not take the source of
  // (v2 UNSPEC, AF_UNIX): the connection keeps its own peer address.
  bool keeps_peer = true;
  IpAddress source;  // the client's address when !keeps_peer
  uint16_t source_port = 0;
};

enum class ProxyParse { kIncomplete, kDone, kError };

// Parses the header at the start of |data|. kDone: *consumed bytes (the whole header, v2
// TLVs included) belong to it and *out says what it said. kIncomplete: every byte so far can
// begin a valid header; call again with more (nothing is kept between calls). kError: not a
// valid header, *reason says why (for the debug log); the connection must be closed. Only
// kDone sets *consumed to anything but 0.
// v1 is at most 107 bytes (spec 2.1), v2 at most 16 + 65535.
ProxyParse parse_proxy_header(const char* data, size_t len, size_t* consumed, ProxyHeader* out,
                              std::string_view* reason);

}  // namespace aiowsgi::worker
