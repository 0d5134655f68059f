// PosixRegex: a POSIX extended regular expression (glibc regcomp, REG_EXTENDED | REG_NOSUB),
// compiled once and searched many times: the patterns of [static] expires_file and
// expires_uri. glibc's matcher does not recurse per input byte, so a long request URI cannot
// exhaust the stack (libstdc++'s std::regex can). Checked by the master at load, compiled
// again by each worker; no Python. search() is const and may be called from any thread.
#pragma once

#include <regex.h>

#include <memory>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace aiowsgi {

class PosixRegex {
 public:
  // |pattern| compiled, or why it is refused: regcomp's own reason ("Unmatched ( or \\(") or,
  // for the PCRE escapes POSIX lacks (\d \D), what to write instead; uWSGI's patterns are PCRE.
  static Result<PosixRegex> compile(std::string_view pattern);

  // True when the pattern matches anywhere in |text| (which may hold NUL bytes). A matcher
  // failure (out of memory) counts as no match.
  bool search(std::string_view text) const noexcept;

 private:
  struct Free {
    void operator()(regex_t* re) const noexcept;
  };
  explicit PosixRegex(std::unique_ptr<regex_t, Free> re) : re_(std::move(re)) {}
  std::unique_ptr<regex_t, Free> re_;
};

}  // namespace aiowsgi
