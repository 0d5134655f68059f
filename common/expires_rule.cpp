#include "common/expires_rule.h"

#include <charconv>
#include <system_error>

namespace aiowsgi {

Result<ExpiresRule> ExpiresRule::parse(std::string_view text) {
  constexpr std::string_view kBlanks = " \t";
  size_t end = text.find_last_not_of(kBlanks);
  text = end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
  size_t blank = text.find_last_of(kBlanks);
  if (blank == std::string_view::npos) return Status::Config("must be \"PATTERN SECONDS\"");
  std::string_view seconds = text.substr(blank + 1);
  std::string_view pattern = text.substr(0, blank);
  size_t first = pattern.find_first_not_of(kBlanks);
  size_t last = pattern.find_last_not_of(kBlanks);
  if (first == std::string_view::npos) return Status::Config("must be \"PATTERN SECONDS\"");
  pattern = pattern.substr(first, last - first + 1);
  int64_t n = -1;
  auto [stop, ec] = std::from_chars(seconds.data(), seconds.data() + seconds.size(), n);
  if (ec != std::errc() || stop != seconds.data() + seconds.size()) {
    return Status::Config("'" + std::string(seconds) + "' is not a number of seconds");
  }
  if (n < 0 || n > kMaxExpires) {
    return Status::Config("seconds must be 0.." + std::to_string(kMaxExpires));
  }
  return ExpiresRule{std::string(pattern), n};
}

}  // namespace aiowsgi
