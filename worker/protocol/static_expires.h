// ExpiryRules: the expiry a static file gets from [static] expires_file, expires_uri and
// expires_type (uWSGI's static-expires, static-expires-uri and static-expires-type), and the
// header fields that announce it. Built once per worker from the checked Config and then only
// read, on the loop's greenlet; no Python, no I/O.
#pragma once

#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/posix_regex.h"
#include "common/status.h"

namespace aiowsgi::worker {

class ExpiryRules {
 public:
  // What a rule's pattern is matched against.
  enum class Target {
    kFile,  // the file's path: the [static] map folder joined with the path below the prefix
    kUri,   // the request URI as sent: path and query, not decoded (uWSGI's REQUEST_URI)
    kType,  // the media type of the Content-Type sent ("text/css"), compared exactly
  };

  // Appends |rules| ("PATTERN SECONDS" each, common/expires_rule.h) for |target|, after the
  // ones already added. The master checked them at load; one that does not parse or compile
  // anyway is left out and its reason returned (the others are still added).
  Status add(Target target, const std::vector<std::string>& rules);
  bool empty() const noexcept { return rules_.empty(); }

  // The seconds of the first rule that matches: file rules first, then URI rules, then type
  // rules (uWSGI's order), each in the order given; nullopt when none does.
  std::optional<int64_t> match(std::string_view file_path, std::string_view uri,
                               std::string_view content_type) const noexcept;

 private:
  struct Rule {
    Target target;
    std::optional<PosixRegex> regex;  // kFile, kUri
    std::string media_type;           // kType, lower case
    int64_t seconds;
  };
  std::vector<Rule> rules_;  // sorted by target, stable
};

// "Cache-Control: max-age=N\r\nExpires: DATE\r\n", DATE being |now| + N (RFC 9111 5.2.2.1 and
// 5.3: a cache that knows max-age ignores Expires, older HTTP/1.0 caches read Expires).
std::string expiry_fields(int64_t seconds, time_t now);

}  // namespace aiowsgi::worker
