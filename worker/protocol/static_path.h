// Static files, the pure part: mapping a request path to a file path below a [static] map
// folder, and the HTTP header logic of a file response (Range, If-None-Match,
// If-Modified-Since, Accept-Encoding, ETag, HTTP dates). Used by workers on the loop's
// greenlet; no Python, no I/O, no allocation beyond the strings returned.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aiowsgi::worker::static_path {

// The part of |decoded| (a percent-decoded URL path that starts with a map prefix, the
// prefix already removed) to open below the folder: segments joined by '/', without empty
// and "." segments. nullopt when the path must not be served: a NUL byte, a ".." segment, or
// nothing left (the folder itself).
std::optional<std::string> relative_path(std::string_view decoded);

// A parsed Range header (RFC 9110 14.2) against a representation of |size| bytes.
struct Range {
  enum class Kind {
    kNone,           // no Range, not "bytes=", malformed, or several ranges: send it all (200)
    kSingle,         // one satisfiable range: 206 with first..last (inclusive)
    kUnsatisfiable,  // syntactically fine, but no byte of it exists: 416
  };
  Kind kind = Kind::kNone;
  uint64_t first = 0, last = 0;
};
Range parse_range(std::string_view header, uint64_t size);

// A strong entity tag (with its quotes) from the file's identity and version.
std::string make_etag(ino_t inode, uint64_t size, int64_t mtime_ns);

// If-None-Match (RFC 9110 13.1.2): true when |header| lists |etag| (weak comparison) or is
// "*".
bool none_match_hits(std::string_view header, std::string_view etag);

// If-Range (RFC 9110 13.1.5): true when the range may be served: the header is the same
// strong entity tag, or an HTTP date equal to |mtime| (a strong validator: exact second).
bool if_range_allows(std::string_view header, std::string_view etag, time_t mtime);

// An HTTP date in any of the three forms of RFC 9110 5.6.7, as seconds since the epoch.
std::optional<time_t> parse_http_date(std::string_view s);
// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(time_t t);

// Accept-Encoding (RFC 9110 12.5.3): true when gzip is acceptable (listed as gzip or x-gzip,
// or covered by "*", with q > 0).
bool accepts_gzip(std::string_view header);

}  // namespace aiowsgi::worker::static_path
