// Request-target helpers (RFC 3986, RFC 9112 3.2): the authority check of an absolute-form
// target and percent-decoding of a path. Pure functions; workers, any greenlet, no Python.
#pragma once

#include <string>
#include <string_view>

namespace aiowsgi::worker {

// authority = host [ ":" port ] as an absolute-form http(s) target or a Host field (RFC 9112
// 3.2) may carry it: reg-name (pct-encoding checked), IPv4, or a bracketed IPv6 address or
// IPvFuture, and digits after a colon (an empty port is valid: port = *DIGIT). userinfo
// ("user@") is refused (RFC 9110 4.2.4 asks recipients to treat it as an error), and so is
// an empty host.
bool valid_authority(std::string_view a);

// Percent-decodes |in| (each valid %XX to one byte; an invalid escape is kept as is), appending
// to *out. PEP 3333 then exposes the bytes as a latin-1 str.
void percent_decode(std::string_view in, std::string* out);

}  // namespace aiowsgi::worker
