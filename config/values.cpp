#include "config/values.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

#include "common/address.h"
#include "common/ip_networks.h"
#include "common/numeric_id.h"
#include "common/posix_regex.h"
#include "common/url_prefix.h"
#include "config/virtualenv.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

Status refuse(std::string reason) { return Status::Config(std::move(reason)); }

// RFC 9110 5.6.2 tchar.
bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "Name: value" as a response field the server may add: the name an HTTP token and none the
// server writes itself, the value without CR, LF or NUL (they would split the response).
// Normalized to "Name: value" (no space before the colon, one after it).
Result<Value> accept_header_field(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return refuse("must be \"Name: value\"");
  std::string_view name = s.substr(0, colon);
  std::string_view value = s.substr(colon + 1);
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
    return refuse("the name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)");
  }
  for (std::string_view owned :
       {"content-length", "transfer-encoding", "connection", "date", "keep-alive", "upgrade"}) {
    auto same = [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; };
    if (std::equal(name.begin(), name.end(), owned.begin(), owned.end(), same)) {
      return refuse("the server writes " + std::string(name) + " itself");
    }
  }
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return refuse("the value must not hold CR, LF or NUL");
  }
  size_t first = value.find_first_not_of(" \t");
  value = first == std::string_view::npos
              ? std::string_view()
              : value.substr(first, value.find_last_not_of(" \t") - first + 1);
  return Value(std::string(name).append(": ").append(value));
}

// A media type as Content-Type names it: "type/subtype", both HTTP tokens (RFC 9110 8.3.1).
bool is_media_type(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return false;
  return std::all_of(s.begin(), s.begin() + slash, is_token_char) &&
         std::all_of(s.begin() + slash + 1, s.end(), is_token_char);
}

// One uWSGI static-expires rule (common/expires_rule.h): "REGEX SECONDS", the regex compiled
// here so a bad one is a config error, or "TYPE/SUBTYPE SECONDS". Normalized to one blank.
Result<Value> accept_expires_rule(std::string_view s, bool media_type) {
  Result<ExpiresRule> rule = ExpiresRule::parse(s);
  if (!rule.ok()) {
    return refuse(rule.status().message() +
                  (media_type ? " (\"text/css 86400\")" : " (\"\\\\.css$ 86400\")"));
  }
  if (media_type) {
    if (!is_media_type(rule->pattern)) return refuse("'" + rule->pattern + "' is not TYPE/SUBTYPE");
  } else if (Result<PosixRegex> re = PosixRegex::compile(rule->pattern); !re.ok()) {
    return re.status();
  }
  return Value(rule->text());
}

// Resolves |p| against |base|. Lexical only: symlinks are kept as written, and the path need
// not exist.
std::string resolve_path(const std::string& p, const fs::path& base) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (base / path).lexically_normal().string();
}

// "unix:sock" -> "unix:/base/sock" (also after "https://"); other addresses are returned
// unchanged.
std::string resolve_address(const std::string& a, const fs::path& base) {
  constexpr std::string_view kUnix = "unix:";
  if (a.compare(0, kHttpsScheme.size(), kHttpsScheme) == 0)
    return std::string(kHttpsScheme) + resolve_address(a.substr(kHttpsScheme.size()), base);
  if (a.size() <= kUnix.size() || a.compare(0, kUnix.size(), kUnix) != 0) return a;
  return std::string(kUnix) + resolve_path(a.substr(kUnix.size()), base);
}

// A dotted Python name: "pkg.mod", "app". Non-ASCII bytes are let through (PEP 3131 names).
bool is_dotted_name(std::string_view s) {
  if (s.empty()) return false;
  bool at_start = true;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '.') {
      if (at_start) return false;
      at_start = true;
      continue;
    }
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || u >= 0x80;
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && !at_start)) return false;
    at_start = false;
  }
  return !at_start;
}

// A numeric id (common/numeric_id.h) need not have a passwd/group entry; range errors are
// reported by the caller before these are asked.
bool user_exists(const std::string& name) {
  if (uint32_t id = 0; parse_numeric_id(name, &id) == IdText::kNumber) return true;
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  return getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr;
}

bool group_exists(const std::string& name) {
  if (uint32_t id = 0; parse_numeric_id(name, &id) == IdText::kNumber) return true;
  group gr{};
  group* found = nullptr;
  std::vector<char> buf(16384);
  return getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr;
}

bool is_directory(const std::string& path, struct stat* st) {
  return ::stat(path.c_str(), st) == 0 && S_ISDIR(st->st_mode);
}

Result<std::string> accept_path(const std::string& p, const fs::path& base) {
  if (p.find('\0') != std::string::npos) return refuse("path contains a NUL byte");
  return resolve_path(p, base);
}

// Resolves a unix: path and checks that the address parses. "" means none.
Result<std::string> accept_address(const std::string& written, const fs::path& base,
                                   bool tcp_only) {
  if (written.empty()) return written;
  std::string resolved = resolve_address(written, base);
  SocketAddress addr;
  if (Status st = parse_address(resolved, &addr); !st.ok()) return refuse(st.message());
  if (tcp_only && addr.family == SocketAddress::Family::kUnix) {
    return refuse("must be HOST:PORT (scraped over TCP)");
  }
  return resolved;
}

// A URL prefix = folder entry of [static] map (|folder| already resolved).
Status check_static_entry(std::string_view prefix, const std::string& folder) {
  if (prefix.empty() || prefix.front() != '/' || prefix.back() != '/') {
    return refuse("the URL prefix must start and end with '/' (\"/static/\")");
  }
  if (prefix.find_first_of(std::string_view("?#\0", 3)) != std::string_view::npos) {
    return refuse("the URL prefix must be a plain path (no '?', '#' or NUL)");
  }
  if (folder.empty()) return refuse("the folder must not be empty");
  if (folder.find('\0') != std::string::npos) return refuse("the folder contains a NUL byte");
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) return refuse("no such directory: " + folder);
  if (!S_ISDIR(st.st_mode)) return refuse("not a directory: " + folder);
  return Status::Ok();
}

}  // namespace

std::string format_double(double d) {
  // Fixed notation reads best ("10000000", not "1e+07") as long as it is short; the buffer's
  // size is the limit, past which to_chars fails and the exponent form is used.
  constexpr size_t kFixedChars = 24;
  char buf[kFixedChars];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (ec == std::errc()) return std::string(buf, end);
  char sci[32];  // the longest shortest-exact exponent form is 24 characters
  auto [send, sec] = std::to_chars(sci, sci + sizeof sci, d, std::chars_format::scientific);
  if (sec != std::errc()) return "?";
  return std::string(sci, send);
}

namespace {

// Appends |c| to |out| as a TOML basic string would write it, if it is a control character.
bool append_escaped_control(std::string* out, unsigned char c) {
  switch (c) {
    case '\n':
      *out += "\\n";
      return true;
    case '\t':
      *out += "\\t";
      return true;
    case '\r':
      *out += "\\r";
      return true;
    default:
      if (c >= 0x20 && c != 0x7f) return false;
      static constexpr char kHex[] = "0123456789ABCDEF";
      *out += "\\u00";
      *out += kHex[c >> 4];
      *out += kHex[c & 0xf];
      return true;
  }
}

}  // namespace

std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (!append_escaped_control(&out, c)) out += static_cast<char>(c);
  }
  return out;
}

std::string quote(std::string_view s) {
  // A TOML basic string: shows what the file holds (a newline written as \n in the file reads
  // back as \n here), on one line.
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (!append_escaped_control(&out, c)) {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string render(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return format_double(*d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return quote(std::get<std::string>(v));
}

bool is_array(const Key& key) {
  return key.type == Type::kAddressList || key.type == Type::kPathList ||
         key.type == Type::kNetworkList || key.type == Type::kHeaderList ||
         key.type == Type::kRegexExpiry || key.type == Type::kTypeExpiry;
}

std::vector<std::string> list_elements(const Key& key, std::string_view text) {
  if (key.type != Type::kNetworkList) return {std::string(text)};
  std::vector<std::string> out;
  for (size_t start = 0; start <= text.size();) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string_view part = text.substr(start, comma - start);
    size_t first = part.find_first_not_of(" \t");
    if (first != std::string_view::npos) {
      part = part.substr(first, part.find_last_not_of(" \t") - first + 1);
      out.emplace_back(part);
    }
    start = comma + 1;
  }
  return out;
}

bool is_table(const Key& key) { return key.type == Type::kEnv || key.type == Type::kStaticMap; }

Status check_module(std::string_view module) {
  size_t colon = module.find(':');
  if (!is_dotted_name(module.substr(0, colon))) {
    return refuse("must be \"package.module\" or \"package.module:callable\"");
  }
  if (colon != std::string_view::npos && !is_dotted_name(module.substr(colon + 1))) {
    return refuse("the callable after ':' must be a Python name");
  }
  return Status::Ok();
}

Result<Value> parse_text(const Key& key, std::string_view text) {
  switch (key.type) {
    case Type::kInt: {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size()) {
        return refuse(std::string("'").append(text) + "' is not an integer");
      }
      return Value(n);
    }
    case Type::kFileMode: {
      // Octal, as chmod(1) and uWSGI's chmod-socket write it.
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n, 8);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return refuse(std::string("'").append(text) + "' is not an octal mode (\"660\")");
      }
      return Value(n);
    }
    case Type::kSeconds:
    case Type::kPositiveSeconds: {
      std::string s(text);
      char* end = nullptr;
      double d = std::strtod(s.c_str(), &end);
      if (s.empty() || end != s.c_str() + s.size()) {
        return refuse("'" + s + "' is not a number of seconds");
      }
      return Value(d);
    }
    case Type::kBool:
      if (text == "true") return Value(true);
      if (text == "false") return Value(false);
      return refuse(std::string("'").append(text) + "' is not true or false");
    default:
      return Value(std::string(text));
  }
}

Status check_value(const Key& key, const Value& v) {
  switch (key.type) {
    case Type::kInt: {
      int64_t n = std::get<int64_t>(v);
      if (n >= key.min && n <= key.max) return Status::Ok();
      if (key.max == INT64_MAX) return refuse("must be >= " + std::to_string(key.min));
      return refuse("must be " + std::to_string(key.min) + ".." + std::to_string(key.max));
    }
    case Type::kFileMode: {
      int64_t n = std::get<int64_t>(v);
      if (n >= 0 && n <= 0777) return Status::Ok();
      return refuse("must be an octal mode 0..777");
    }
    case Type::kSeconds:
    case Type::kPositiveSeconds: {
      double d = std::get<double>(v);
      bool positive = key.type == Type::kPositiveSeconds;
      if (!std::isfinite(d) || d < 0 || d > kMaxSeconds || (positive && d == 0)) {
        return refuse(positive ? "must be > 0 and <= " + format_double(kMaxSeconds) + " seconds"
                               : "must be 0.." + format_double(kMaxSeconds) + " seconds");
      }
      if (d != 0 && d < kMinSeconds) {
        return refuse("must be at least " + format_double(kMinSeconds) +
                      " seconds (timeouts are checked every " + format_double(kMinSeconds) + " s)" +
                      (positive ? "" : ", or 0"));
      }
      return Status::Ok();
    }
    case Type::kChoice: {
      const std::string& s = std::get<std::string>(v);
      if (std::find(key.choices.begin(), key.choices.end(), s) != key.choices.end()) {
        return Status::Ok();
      }
      std::string list;
      for (std::string_view c : key.choices) list += (list.empty() ? "" : ", ") + quote(c);
      return refuse("must be one of " + list);
    }
    case Type::kPythonName:
      if (is_dotted_name(std::get<std::string>(v))) return Status::Ok();
      return refuse("must be a Python name");
    case Type::kModule: {
      const std::string& s = std::get<std::string>(v);
      return s.empty() ? Status::Ok() : check_module(s);  // "" in the file: no module
    }
    default:
      return Status::Ok();
  }
}

Result<Value> accept(const Key& key, Value v, const fs::path& base) {
  if (Status st = check_value(key, v); !st.ok()) return st;
  if (!std::holds_alternative<std::string>(v)) return v;
  const std::string& s = std::get<std::string>(v);
  switch (key.type) {
    case Type::kPath: {
      Result<std::string> p = accept_path(s, base);
      if (!p.ok()) return p.status();
      return Value(std::move(p).value());
    }
    case Type::kDirectory: {
      Result<std::string> p = accept_path(s, base);
      if (!p.ok()) return p.status();
      struct stat st {};
      if (!p->empty() && !is_directory(*p, &st)) return refuse("no such directory: " + *p);
      return Value(std::move(p).value());
    }
    case Type::kVirtualenv: {
      Result<std::string> p = accept_path(s, base);
      if (!p.ok()) return p.status();
      if (p->size() > 1 && p->back() == '/') p->pop_back();  // "venv/": messages, bin/python
      if (!p->empty()) {
        if (Status st = check_virtualenv(*p); !st.ok()) return st;
      }
      return Value(std::move(p).value());
    }
    case Type::kPathList: {
      if (s.empty()) return refuse("empty path");
      Result<std::string> p = accept_path(s, base);
      if (!p.ok()) return p.status();
      return Value(std::move(p).value());
    }
    case Type::kUser:
    case Type::kGroup: {
      // A numeric user or group past kMaxNumericId would wrap (4294967296 is uid 0: root).
      const bool user = key.type == Type::kUser;
      if (uint32_t id = 0; parse_numeric_id(s, &id) == IdText::kOutOfRange) {
        return refuse(std::string(user ? "uid" : "gid") + " out of range: a number must be 0.." +
                      std::to_string(kMaxNumericId));
      }
      if (!s.empty() && !(user ? user_exists(s) : group_exists(s))) {
        return refuse(user ? "no such user" : "no such group");
      }
      return v;
    }
    case Type::kAddress:
    case Type::kTcpAddress:
    case Type::kAddressList: {
      Result<std::string> a = accept_address(s, base, key.type == Type::kTcpAddress);
      if (!a.ok()) return a.status();
      // An empty element of a listener array is no "none": parse_address says why.
      if (a->empty() && key.type == Type::kAddressList) {
        SocketAddress addr;
        if (Status st = parse_address(s, &addr); !st.ok()) return refuse(st.message());
      }
      return Value(std::move(a).value());
    }
    case Type::kNetworkList:
      if (Status st = IpNetworks::check(s); !st.ok()) return st;
      return v;
    case Type::kHeaderList:
      return accept_header_field(s);
    case Type::kRegexExpiry:
    case Type::kTypeExpiry:
      return accept_expires_rule(s, key.type == Type::kTypeExpiry);
    case Type::kUrlPrefix: {
      std::string p;
      if (s.empty()) return v;
      if (!normalize_prefix(s, &p))
        return refuse("must be a URL path like \"/app\" (no %-escapes, spaces or \"//\")");
      return Value(std::move(p));
    }
    default:
      return v;
  }
}

Result<Entry> accept_entry(const Key& key, Entry e, const fs::path& base) {
  if (key.type == Type::kEnv) {
    if (e.first.empty() || e.first.find('=') != std::string::npos) {
      return refuse("not a valid environment variable name");
    }
    return e;
  }
  e.second = resolve_path(e.second, base);
  if (Status st = check_static_entry(e.first, e.second); !st.ok()) return st;
  return e;
}

void store(const Key& key, Value v, Config* cfg) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) {
          *p = static_cast<T>(std::get<int64_t>(v));
        } else if constexpr (std::is_same_v<T, double>) {
          *p = std::get<double>(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          *p = std::get<bool>(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          *p = std::move(std::get<std::string>(v));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          p->push_back(std::move(std::get<std::string>(v)));
        }
      },
      key.field(*cfg));
}

void store_entry(const Key& key, Entry e, Config* cfg) {
  auto* entries = std::get<std::vector<Entry>*>(key.field(*cfg));
  for (auto& [name, value] : *entries) {
    if (name == e.first) {
      value = std::move(e.second);
      return;
    }
  }
  entries->push_back(std::move(e));
}

void clear(const Key& key, Config* cfg) {
  std::visit(
      [](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (!std::is_arithmetic_v<T>) p->clear();
      },
      key.field(*cfg));
}

}  // namespace aiowsgi::config
