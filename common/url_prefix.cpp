#include "common/url_prefix.h"

namespace aiowsgi {

bool under_prefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

bool normalize_prefix(std::string_view in, std::string* out) {
  if (in.empty() || in.front() != '/') return false;
  for (char c : in) {
    // RFC 3986 3.3 pchar and '/', without pct-encoded: the prefix is compared with the
    // decoded path, so an escape in it could never match what it seems to say.
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) ok = std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  while (!in.empty() && in.back() == '/') in.remove_suffix(1);
  if (in.find("//") != std::string_view::npos) return false;
  out->assign(in);
  return true;
}

}  // namespace aiowsgi
