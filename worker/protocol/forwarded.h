// Forwarded: what a trusted proxy says about the client, from the request head's
// X-Forwarded-For/-Proto/-Host/-Port, RFC 7239 Forwarded and X-Forwarded-Prefix/X-Script-Name
// ([server] forwarded_allow_ips), and the URL prefix rule of [app] mount. Workers, for HTTP
// requests from a peer the server trusts; pure, no Python, no allocation unless a header is
// present.
#pragma once

#include <string>
#include <string_view>

#include "common/ip_networks.h"
#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {

// The forwarding fields of one request head, as views into it. Repeated fields are expected
// joined with ", " (header_fields.h), the order of the list they form.
struct ForwardedFields {
  std::string_view forwarded, x_for, x_proto, x_host, x_port, x_prefix;

  // Records |value| when |name| (any case) is one of the fields above; false otherwise.
  // Cheap on the common case: most names are rejected on their length or first letter.
  bool offer(std::string_view name, std::string_view value);
  bool any() const {
    return !forwarded.empty() || !x_for.empty() || !x_proto.empty() || !x_host.empty() ||
           !x_port.empty() || !x_prefix.empty();
  }
};

// What the fields say, each member "" when nothing usable was said. Malformed values are
// ignored (the request keeps the peer's own values), never an error.
struct ForwardedView {
  std::string client;  // the client's address (REMOTE_ADDR), canonical text
  // The client's port (REMOTE_PORT), decimal 1..65535, when the node naming the client has
  // one ("1.2.3.4:4711", "[2001:db8::1]:4711"); "" otherwise, also when client is "".
  std::string client_port;
  std::string scheme;  // "http" or "https" (wsgi.url_scheme)
  std::string host;    // HTTP_HOST
  std::string port;    // SERVER_PORT, decimal 1..65535
  std::string prefix;  // SCRIPT_NAME: "/a/b", no trailing '/'
};

// The client is the rightmost address of X-Forwarded-For (else of Forwarded's for=) that
// |trusted| does not hold: each trusted proxy appends the address it got the request from, so
// everything left of the first untrusted hop may be made up by the client; when every hop is
// trusted, the leftmost. An element that is not an address ("unknown", an obfuscated
// identifier, garbage) ends the walk with no client. X-Forwarded-* win over Forwarded for the
// same piece of information; proto, host and port come from the rightmost element.
ForwardedView resolve_forwarded(const ForwardedFields& f, const IpNetworks& trusted);

// The forwarding fields of a parsed head, straight from the parser (a repeated field counts
// by its last line): for the answers given without an environ (the mount's 404, static
// files' access log lines).
ForwardedFields forwarded_fields(const RequestParser& p);

}  // namespace aiowsgi::worker
