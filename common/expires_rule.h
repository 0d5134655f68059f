// One rule of uWSGI's static-expires family as aiowsgi's [static] expires_file, expires_uri
// and expires_type hold it: "PATTERN SECONDS" (a regular expression, or a media type), the
// file's expiry when the pattern matches. Parsed by the master when the config is loaded (the
// stored text is normalized to one blank before SECONDS) and again by each worker; no Python.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace aiowsgi {

// [static] expires: ten years; browsers cap max-age far lower anyway.
constexpr int64_t kMaxExpires = int64_t{10} * 365 * 24 * 3600;

struct ExpiresRule {
  std::string pattern;  // as written, blanks around it dropped
  int64_t seconds = 0;  // 0..kMaxExpires; 0: expired at once (max-age=0)

  // "PATTERN SECONDS", SECONDS after the last run of blanks (the pattern may hold blanks).
  // Refused: no blank, an empty pattern, SECONDS not an integer in 0..kMaxExpires. The
  // pattern itself is checked by the caller (PosixRegex::compile, or a media type).
  static Result<ExpiresRule> parse(std::string_view text);
  // "PATTERN SECONDS", as parse() reads it back.
  std::string text() const { return pattern + " " + std::to_string(seconds); }
};

}  // namespace aiowsgi
