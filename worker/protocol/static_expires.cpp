#include "worker/protocol/static_expires.h"

#include <algorithm>
#include <cctype>
#include <new>
#include <string>

#include "common/expires_rule.h"
#include "worker/protocol/static_path.h"

namespace aiowsgi::worker {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "text/html; charset=utf-8" -> "text/html" (lower case): the part a type rule names.
std::string media_type_of(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  size_t last = t.find_last_not_of(" \t");
  return lower(last == std::string_view::npos ? std::string_view() : t.substr(0, last + 1));
}

}  // namespace

Status ExpiryRules::add(Target target, const std::vector<std::string>& rules) {
  Status first_error;
  for (const std::string& text : rules) {
    Result<ExpiresRule> rule = ExpiresRule::parse(text);
    Rule r{target, std::nullopt, "", 0};
    if (rule.ok() && target == Target::kType) {
      r.media_type = lower(rule->pattern);
    } else if (rule.ok()) {
      Result<PosixRegex> re = PosixRegex::compile(rule->pattern);
      if (!re.ok()) rule = re.status();
      if (re.ok()) r.regex.emplace(std::move(re).value());
    }
    if (!rule.ok()) {
      if (first_error.ok()) first_error = Status::Config(text + ": " + rule.status().message());
      continue;
    }
    r.seconds = rule->seconds;
    rules_.push_back(std::move(r));
  }
  std::stable_sort(rules_.begin(), rules_.end(),
                   [](const Rule& a, const Rule& b) { return a.target < b.target; });
  return first_error;
}

std::optional<int64_t> ExpiryRules::match(std::string_view file_path, std::string_view uri,
                                          std::string_view content_type) const noexcept {
  std::string type;
  for (const Rule& r : rules_) {
    bool hit = false;
    switch (r.target) {
      case Target::kFile:
        hit = r.regex->search(file_path);
        break;
      case Target::kUri:
        hit = r.regex->search(uri);
        break;
      case Target::kType:
        try {
          if (type.empty()) type = media_type_of(content_type);
        } catch (const std::bad_alloc&) {
          return std::nullopt;  // no expiry rather than no response
        }
        hit = r.media_type == type;
        break;
    }
    if (hit) return r.seconds;
  }
  return std::nullopt;
}

std::string expiry_fields(int64_t seconds, time_t now) {
  return "Cache-Control: max-age=" + std::to_string(seconds) +
         "\r\nExpires: " + static_path::format_http_date(now + static_cast<time_t>(seconds)) +
         "\r\n";
}

}  // namespace aiowsgi::worker
