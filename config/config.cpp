#include "config/config.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "common/address.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMinWorkers = 1;
constexpr int64_t kMaxWorkers = 1024;
constexpr int64_t kMinCores = 1;
constexpr int64_t kMaxCores = 100000;
constexpr int64_t kMinBacklog = 1;
constexpr int64_t kMaxBacklog = 65535;
constexpr int64_t kMinHeaderBytes = 1024;
constexpr int64_t kMaxHeaderBytes = int64_t{16} * 1024 * 1024;
// Durations are seconds; the cap keeps later conversions (to ev_tstamp, to integer
// nanoseconds for timers) far from overflow. 10^7 s is about 115 days.
constexpr double kMaxSeconds = 1e7;

// The number of CPUs this process may run on (honours taskset/cgroup cpusets), at least 1.
int default_workers() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<int>(std::min<int64_t>(n, kMaxWorkers));
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(std::min<int64_t>(n, kMaxWorkers)) : 1;
}

std::string type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string format_double(double d) {
  char buf[400];  // fixed notation of DBL_MAX needs 309 digits
  // Fixed notation: "10000000", not "1e+07"; still the shortest form that reads back exactly.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The value as it would be written in the file, for messages like `workers = 0`.
std::string render(const toml::node& n) {
  if (auto* i = n.as_integer()) return std::to_string(i->get());
  if (auto* f = n.as_floating_point()) return format_double(f->get());
  if (auto* s = n.as_string()) return quote(s->get());
  if (auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  return type_name(n.type());
}

// Resolves |p| against |base| (the config file's folder, or the current directory for
// command-line values). Lexical only: symlinks are kept as written, and the path need not exist.
std::string resolve_path(const std::string& p, const fs::path& base) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (base / path).lexically_normal().string();
}

// "unix:sock" → "unix:/base/sock"; other addresses are returned unchanged.
std::string resolve_address(const std::string& a, const fs::path& base) {
  constexpr std::string_view kUnix = "unix:";
  if (a.size() <= kUnix.size() || a.compare(0, kUnix.size(), kUnix) != 0) return a;
  return std::string(kUnix) + resolve_path(a.substr(kUnix.size()), base);
}

fs::path current_dir() {
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  return ec ? fs::path("/") : cwd;
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

// "" when |module| ("pkg.mod" or "pkg.mod:callable") is well formed, else the reason.
std::string check_module(std::string_view module) {
  size_t colon = module.find(':');
  std::string_view mod = module.substr(0, colon);
  if (!is_dotted_name(mod)) return "must be \"package.module\" or \"package.module:callable\"";
  if (colon != std::string_view::npos && !is_dotted_name(module.substr(colon + 1))) {
    return "the callable after ':' must be a Python name";
  }
  return "";
}

bool user_exists(const std::string& name) {
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return true;  // a numeric uid need not have a passwd entry
  }
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  return getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr;
}

bool group_exists(const std::string& name) {
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return true;
  }
  group gr{};
  group* found = nullptr;
  std::vector<char> buf(16384);
  return getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr;
}

// Reads a whole file. O_CLOEXEC like every fd here: the master reads the config on reload,
// between forks of workers that must not inherit it.
Status read_file(const std::string& path, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Io("cannot open", errno);
  struct stat st {};
  if (fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Io("cannot read", EISDIR);
  out->clear();
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Io("cannot read", errno);
    }
    out->append(buf, static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Errors with a file location sort by line and column (toml::table iterates keys in sorted
// order, not file order); errors without one follow in the order they were found.
class ErrorList {
 public:
  void at(const std::string& file, const toml::source_region& where, const std::string& msg) {
    located_.emplace_back(where.begin.line, where.begin.column,
                          file + ":" + std::to_string(where.begin.line) + ":" +
                              std::to_string(where.begin.column) + ": " + msg);
  }
  void add(std::string msg) { plain_.push_back(std::move(msg)); }
  bool empty() const { return located_.empty() && plain_.empty(); }
  size_t size() const { return located_.size() + plain_.size(); }
  std::vector<std::string> take() {
    std::stable_sort(located_.begin(), located_.end(), [](const auto& a, const auto& b) {
      return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
    });
    std::vector<std::string> all;
    for (auto& e : located_) all.push_back(std::move(std::get<2>(e)));
    for (auto& e : plain_) all.push_back(std::move(e));
    return all;
  }

 private:
  std::vector<std::tuple<uint32_t, uint32_t, std::string>> located_;
  std::vector<std::string> plain_;
};

// Where a setting came from, for checks made after the file and the command line are merged
// ("server.toml:7:13: [app] wsgi_file = \"app.py\"" or "command line: --wsgi-file app.py").
// The flags keep one mistake from producing a second, misleading error: a listen array with a
// bad address must not also yield "no listener".
struct Origins {
  std::string wsgi_file;
  bool file_failed = false;   // unreadable or not TOML: nothing else about it is known
  bool listen_error = false;  // some listener was rejected
  bool app_error = false;     // wsgi_file or module was rejected
};

// Reads one server.toml into a Config, checking every key as it goes.
class FileLoader {
 public:
  FileLoader(std::string label, fs::path dir, Config* cfg, ErrorList* errors, Origins* origins)
      : label_(std::move(label)),
        dir_(std::move(dir)),
        cfg_(cfg),
        errors_(errors),
        origins_(origins) {}

  void load(const std::string& text, const std::string& source_path) {
    toml::parse_result result = toml::parse(text, source_path);
    if (!result) {
      const toml::parse_error& err = result.error();
      errors_->at(label_, err.source(), "syntax error: " + std::string(err.description()));
      origins_->file_failed = true;
      return;
    }
    const toml::table& root = result.table();
    for (const auto& [key, node] : root) {
      std::string name(key.str());
      using Handler = void (FileLoader::*)(const toml::table&);
      static const std::map<std::string, Handler, std::less<>> kTables = {
          {"server", &FileLoader::server},
          {"app", &FileLoader::app},
          {"limits", &FileLoader::limits},
          {"stats", &FileLoader::stats},
          {"log", &FileLoader::log}};
      auto it = kTables.find(name);
      if (it == kTables.end()) {
        if (node.is_table()) {
          errors_->at(
              label_, key.source(),
              "[" + name + "]: unknown table (known: [server] [app] [limits] [stats] [log])");
        } else {
          errors_->at(label_, key.source(),
                      name +
                          ": unknown key (settings belong in [server] [app] [limits] "
                          "[stats] or [log])");
        }
        continue;
      }
      if (!node.is_table()) {
        errors_->at(label_, node.source(),
                    "[" + name + "]: expected table, got " + type_name(node.type()));
        continue;
      }
      table_ = name;
      (this->*(it->second))(*node.as_table());
    }
  }

 private:
  // "[server] workers"
  std::string what(std::string_view key) const { return "[" + table_ + "] " + std::string(key); }

  void fail(const toml::node& n, std::string_view key, const std::string& msg) {
    errors_->at(label_, n.source(), what(key) + " = " + render(n) + ": " + msg);
  }

  void wrong_type(const toml::node& n, std::string_view key, std::string_view expected) {
    errors_->at(label_, n.source(),
                what(key) + ": expected " + std::string(expected) + ", got " + type_name(n.type()));
  }

  void unknown_key(const toml::key& key) {
    errors_->at(label_, key.source(), what(key.str()) + ": unknown key");
  }

  bool get_int(const toml::node& n, std::string_view key, int64_t lo, int64_t hi, int64_t* out) {
    const auto* v = n.as_integer();
    if (v == nullptr) {
      wrong_type(n, key, "integer");
      return false;
    }
    if (v->get() < lo || v->get() > hi) {
      if (hi == INT64_MAX) {
        fail(n, key, "must be >= " + std::to_string(lo));
      } else {
        fail(n, key, "must be " + std::to_string(lo) + ".." + std::to_string(hi));
      }
      return false;
    }
    *out = v->get();
    return true;
  }

  bool get_int(const toml::node& n, std::string_view key, int64_t lo, int64_t hi, int* out) {
    int64_t v = 0;
    if (!get_int(n, key, lo, hi, &v)) return false;
    *out = static_cast<int>(v);
    return true;
  }

  // Seconds: an integer or a float. |positive| rejects 0 (a timeout of 0 would fire at once).
  void get_seconds(const toml::node& n, std::string_view key, bool positive, double* out) {
    double d = 0;
    if (const auto* i = n.as_integer()) {
      d = static_cast<double>(i->get());
    } else if (const auto* f = n.as_floating_point()) {
      d = f->get();
    } else {
      wrong_type(n, key, "number of seconds");
      return;
    }
    if (!std::isfinite(d) || d < 0 || d > kMaxSeconds || (positive && d == 0)) {
      fail(n, key,
           positive ? "must be > 0 and <= " + format_double(kMaxSeconds) + " seconds"
                    : "must be 0.." + format_double(kMaxSeconds) + " seconds");
      return;
    }
    *out = d;
  }

  bool get_string(const toml::node& n, std::string_view key, std::string* out) {
    const auto* s = n.as_string();
    if (s == nullptr) {
      wrong_type(n, key, "string");
      return false;
    }
    *out = s->get();
    return true;
  }

  void get_bool(const toml::node& n, std::string_view key, bool* out) {
    const auto* b = n.as_boolean();
    if (b == nullptr) {
      wrong_type(n, key, "boolean");
      return;
    }
    *out = b->get();
  }

  void get_choice(const toml::node& n, std::string_view key,
                  std::initializer_list<std::string_view> choices, std::string* out) {
    std::string v;
    if (!get_string(n, key, &v)) return;
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      std::string list;
      for (auto c : choices) list += (list.empty() ? "" : ", ") + quote(c);
      fail(n, key, "must be one of " + list);
      return;
    }
    *out = v;
  }

  // A path; relative ones resolve against the config file's folder.
  void get_path(const toml::node& n, std::string_view key, std::string* out) {
    std::string v;
    if (!get_string(n, key, &v)) return;
    if (v.find('\0') != std::string::npos) {
      fail(n, key, "path contains a NUL byte");
      return;
    }
    *out = resolve_path(v, dir_);
  }

  // Resolves a unix: path and checks the address parses. |tcp_only| rejects unix: sockets.
  bool check_address(const toml::node& n, std::string_view key, const std::string& written,
                     bool tcp_only, std::string* out) {
    std::string resolved = resolve_address(written, dir_);
    SocketAddress addr;
    if (Status st = parse_address(resolved, &addr); !st.ok()) {
      errors_->at(label_, n.source(), what(key) + " = " + quote(written) + ": " + st.message());
      return false;
    }
    if (tcp_only && addr.family == SocketAddress::Family::kUnix) {
      errors_->at(label_, n.source(),
                  what(key) + " = " + quote(written) + ": must be HOST:PORT (scraped over TCP)");
      return false;
    }
    *out = resolved;
    return true;
  }

  void get_address_list(const toml::node& n, std::string_view key, std::vector<std::string>* out) {
    const auto* arr = n.as_array();
    if (arr == nullptr) {
      wrong_type(n, key, "array of strings");
      return;
    }
    out->clear();
    for (const toml::node& elem : *arr) {
      const auto* s = elem.as_string();
      if (s == nullptr) {
        errors_->at(label_, elem.source(),
                    what(key) + ": expected array of strings, got " + type_name(elem.type()) +
                        " in the array");
        continue;
      }
      std::string resolved;
      if (check_address(elem, key, s->get(), /*tcp_only=*/false, &resolved)) {
        out->push_back(resolved);
      }
    }
  }

  void get_optional_address(const toml::node& n, std::string_view key, bool tcp_only,
                            std::string* out) {
    std::string v;
    if (!get_string(n, key, &v)) return;
    if (v.empty()) {
      out->clear();
      return;
    }
    check_address(n, key, v, tcp_only, out);
  }

  void server(const toml::table& t) {
    ServerConfig& s = cfg_->server;
    for (const auto& [key, n] : t) {
      std::string_view k = key.str();
      if (k == "listen" || k == "uwsgi_listen") {
        size_t errors_before = errors_->size();
        get_address_list(n, k, k == "listen" ? &s.listen : &s.uwsgi_listen);
        if (errors_->size() > errors_before) origins_->listen_error = true;
      } else if (k == "workers") {
        get_int(n, k, kMinWorkers, kMaxWorkers, &s.workers);
      } else if (k == "cores") {
        get_int(n, k, kMinCores, kMaxCores, &s.cores);
      } else if (k == "backlog") {
        get_int(n, k, kMinBacklog, kMaxBacklog, &s.backlog);
      } else if (k == "reuse_port") {
        get_bool(n, k, &s.reuse_port);
      } else if (k == "pidfile") {
        get_path(n, k, &s.pidfile);
      } else if (k == "user") {
        if (get_string(n, k, &s.user) && !s.user.empty() && !user_exists(s.user)) {
          fail(n, k, "no such user");
        }
      } else if (k == "group") {
        if (get_string(n, k, &s.group) && !s.group.empty() && !group_exists(s.group)) {
          fail(n, k, "no such group");
        }
      } else if (k == "graceful_timeout") {
        get_seconds(n, k, /*positive=*/false, &s.graceful_timeout);
      } else {
        unknown_key(key);
      }
    }
  }

  void app(const toml::table& t) {
    AppConfig& a = cfg_->app;
    for (const auto& [key, n] : t) {
      std::string_view k = key.str();
      if (k == "wsgi_file") {
        size_t errors_before = errors_->size();
        get_path(n, k, &a.wsgi_file);
        if (errors_->size() > errors_before) origins_->app_error = true;
        if (!a.wsgi_file.empty()) {
          origins_->wsgi_file = location(n) + what(k) + " = " + render(n);
        }
      } else if (k == "module") {
        std::string v;
        if (!get_string(n, k, &v)) {
          origins_->app_error = true;
          continue;
        }
        if (!v.empty()) {
          if (std::string why = check_module(v); !why.empty()) {
            fail(n, k, why);
            origins_->app_error = true;
            continue;
          }
        }
        a.module = v;
      } else if (k == "callable") {
        std::string v;
        if (!get_string(n, k, &v)) continue;
        if (!is_dotted_name(v)) {
          fail(n, k, "must be a Python name");
          continue;
        }
        a.callable = v;
      } else if (k == "chdir") {
        get_path(n, k, &a.chdir);
        struct stat st {};
        if (!a.chdir.empty() && (::stat(a.chdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
          fail(n, k, "no such directory: " + a.chdir);
        }
      } else if (k == "python_path") {
        python_path(n, k);
      } else if (k == "env") {
        env(n, k);
      } else if (k == "loop") {
        get_choice(n, k, {"asyncio", "uvloop"}, &a.loop);
      } else if (k == "uwsgi_compat") {
        get_bool(n, k, &a.uwsgi_compat);
      } else {
        unknown_key(key);
      }
    }
  }

  void python_path(const toml::node& n, std::string_view k) {
    const auto* arr = n.as_array();
    if (arr == nullptr) {
      wrong_type(n, k, "array of strings");
      return;
    }
    cfg_->app.python_path.clear();
    for (const toml::node& elem : *arr) {
      const auto* s = elem.as_string();
      if (s == nullptr) {
        errors_->at(label_, elem.source(),
                    what(k) + ": expected array of strings, got " + type_name(elem.type()) +
                        " in the array");
      } else if (s->get().empty()) {
        errors_->at(label_, elem.source(), what(k) + ": empty path");
      } else {
        cfg_->app.python_path.push_back(resolve_path(s->get(), dir_));
      }
    }
  }

  void env(const toml::node& n, std::string_view k) {
    const auto* tbl = n.as_table();
    if (tbl == nullptr) {
      wrong_type(n, k, "table of strings");
      return;
    }
    cfg_->app.env.clear();
    for (const auto& [name, value] : *tbl) {
      std::string var(name.str());
      std::string full = std::string(k) + "." + var;
      if (var.empty() || var.find('=') != std::string::npos) {
        errors_->at(label_, name.source(), what(full) + ": not a valid environment variable name");
        continue;
      }
      const auto* s = value.as_string();
      if (s == nullptr) {
        wrong_type(value, full, "string");
        continue;
      }
      cfg_->app.env.emplace_back(var, s->get());
    }
  }

  void limits(const toml::table& t) {
    LimitsConfig& l = cfg_->limits;
    for (const auto& [key, n] : t) {
      std::string_view k = key.str();
      if (k == "harakiri") {
        get_seconds(n, k, /*positive=*/false, &l.harakiri);
      } else if (k == "max_requests") {
        get_int(n, k, 0, INT64_MAX, &l.max_requests);
      } else if (k == "reload_on_rss_mb") {
        get_int(n, k, 0, INT64_MAX, &l.reload_on_rss_mb);
      } else if (k == "keepalive_timeout") {
        get_seconds(n, k, /*positive=*/true, &l.keepalive_timeout);
      } else if (k == "header_timeout") {
        get_seconds(n, k, /*positive=*/true, &l.header_timeout);
      } else if (k == "max_header_bytes") {
        get_int(n, k, kMinHeaderBytes, kMaxHeaderBytes, &l.max_header_bytes);
      } else if (k == "max_body_bytes") {
        get_int(n, k, 0, INT64_MAX, &l.max_body_bytes);
      } else {
        unknown_key(key);
      }
    }
  }

  void stats(const toml::table& t) {
    for (const auto& [key, n] : t) {
      std::string_view k = key.str();
      if (k == "listen") {
        get_optional_address(n, k, /*tcp_only=*/false, &cfg_->stats.listen);
      } else if (k == "metrics") {
        get_optional_address(n, k, /*tcp_only=*/true, &cfg_->stats.metrics);
      } else {
        unknown_key(key);
      }
    }
  }

  void log(const toml::table& t) {
    LogConfig& l = cfg_->log;
    for (const auto& [key, n] : t) {
      std::string_view k = key.str();
      if (k == "level") {
        get_choice(n, k, {"trace", "debug", "info", "warn", "error"}, &l.level);
      } else if (k == "file") {
        get_path(n, k, &l.file);
      } else if (k == "access") {
        get_bool(n, k, &l.access);
      } else if (k == "format") {
        get_choice(n, k, {"text", "json"}, &l.format);
      } else {
        unknown_key(key);
      }
    }
  }

  std::string location(const toml::node& n) const {
    return label_ + ":" + std::to_string(n.source().begin.line) + ":" +
           std::to_string(n.source().begin.column) + ": ";
  }

  std::string label_;  // the file name as given, used in messages
  fs::path dir_;       // relative paths resolve against this
  Config* cfg_;
  ErrorList* errors_;
  Origins* origins_;
  std::string table_;  // the table being read, for messages
};

// Applies the command-line overrides on top of the file. Values resolve against |cwd|.
void apply_command_line(const CommandLine& cli, const fs::path& cwd, Config* cfg, ErrorList* errors,
                        Origins* origins) {
  auto check_addresses = [&](const std::vector<std::string>& given, const char* flag,
                             std::vector<std::string>* out) {
    out->clear();
    for (const std::string& a : given) {
      std::string resolved = resolve_address(a, cwd);
      SocketAddress addr;
      if (Status st = parse_address(resolved, &addr); !st.ok()) {
        errors->add(std::string("command line: ") + flag + " " + a + ": " + st.message());
        origins->listen_error = true;
      } else {
        out->push_back(resolved);
      }
    }
  };
  if (!cli.http.empty()) check_addresses(cli.http, "--http", &cfg->server.listen);
  if (!cli.uwsgi.empty()) check_addresses(cli.uwsgi, "--uwsgi-socket", &cfg->server.uwsgi_listen);
  if (cli.workers) {
    if (*cli.workers < kMinWorkers || *cli.workers > kMaxWorkers) {
      errors->add("command line: --workers " + std::to_string(*cli.workers) + ": must be " +
                  std::to_string(kMinWorkers) + ".." + std::to_string(kMaxWorkers));
    } else {
      cfg->server.workers = *cli.workers;
    }
  }
  if (cli.cores) {
    if (*cli.cores < kMinCores || *cli.cores > kMaxCores) {
      errors->add("command line: --cores " + std::to_string(*cli.cores) + ": must be " +
                  std::to_string(kMinCores) + ".." + std::to_string(kMaxCores));
    } else {
      cfg->server.cores = *cli.cores;
    }
  }
  // An app named on the command line replaces the file's choice of app, whichever kind it was:
  // `-c server.toml --module other:app` must not fail with "both wsgi_file and module".
  if (cli.wsgi_file || cli.module) {
    cfg->app.wsgi_file.clear();
    cfg->app.module.clear();
    origins->wsgi_file.clear();
  }
  if (cli.wsgi_file) {
    cfg->app.wsgi_file = resolve_path(*cli.wsgi_file, cwd);
    origins->wsgi_file = "command line: --wsgi-file " + *cli.wsgi_file;
  }
  if (cli.module) {
    if (std::string why = check_module(*cli.module); !why.empty()) {
      errors->add("command line: --module " + *cli.module + ": " + why);
      origins->app_error = true;
    } else {
      cfg->app.module = *cli.module;
    }
  }
  if (cli.stats) {
    if (cli.stats->empty()) {
      cfg->stats.listen.clear();
    } else {
      std::string resolved = resolve_address(*cli.stats, cwd);
      SocketAddress addr;
      if (Status st = parse_address(resolved, &addr); !st.ok()) {
        errors->add("command line: --stats " + *cli.stats + ": " + st.message());
      } else {
        cfg->stats.listen = resolved;
      }
    }
  }
  if (cli.pidfile) cfg->server.pidfile = resolve_path(*cli.pidfile, cwd);
  if (cli.loop) {
    if (*cli.loop != "asyncio" && *cli.loop != "uvloop") {
      errors->add("command line: --loop " + *cli.loop + ": must be \"asyncio\" or \"uvloop\"");
    } else {
      cfg->app.loop = *cli.loop;
    }
  }
}

// Checks that involve several settings, once the file and the command line are merged.
void check_combination(const std::string& origin, const Origins& origins, Config* cfg,
                       ErrorList* errors) {
  if (origins.file_failed) return;
  if (cfg->server.listen.empty() && cfg->server.uwsgi_listen.empty() && !origins.listen_error) {
    errors->add(origin + ": no listener: set [server] listen or uwsgi_listen, or pass --http ADDR");
  }

  AppConfig& app = cfg->app;
  if (!app.wsgi_file.empty() && !app.module.empty()) {
    errors->add(origin + ": both [app] wsgi_file and [app] module are set; keep one");
  } else if (app.wsgi_file.empty() && app.module.empty()) {
    if (!origins.app_error) {
      errors->add(origin +
                  ": no app: set [app] wsgi_file or [app] module, or pass --wsgi-file / --module");
    }
  } else if (!app.wsgi_file.empty()) {
    struct stat st {};
    if (::stat(app.wsgi_file.c_str(), &st) != 0) {
      errors->add(origins.wsgi_file + ": no such file: " + app.wsgi_file);
    } else if (!S_ISREG(st.st_mode)) {
      errors->add(origins.wsgi_file + ": not a regular file: " + app.wsgi_file);
    }
  } else if (size_t colon = app.module.find(':'); colon != std::string::npos) {
    app.callable = app.module.substr(colon + 1);
    app.module.resize(colon);
  }

  // Two listeners on one address would make the second bind() fail at start-up.
  std::vector<std::pair<std::string, SocketAddress>> addrs;
  auto add = [&](const std::string& name, const std::string& text) {
    if (text.empty()) return;
    SocketAddress a;
    if (!parse_address(text, &a).ok()) return;  // already reported
    for (const auto& [other_name, other] : addrs) {
      if (other.length == a.length && std::memcmp(&other.storage, &a.storage, a.length) == 0) {
        std::string msg = origin;
        msg.append(": ").append(text).append(" is used by both ").append(other_name);
        msg.append(" and ").append(name);
        errors->add(std::move(msg));
        return;
      }
    }
    addrs.emplace_back(name, a);
  };
  for (const auto& l : cfg->server.listen) add("[server] listen", l);
  for (const auto& l : cfg->server.uwsgi_listen) add("[server] uwsgi_listen", l);
  add("[stats] listen", cfg->stats.listen);
  add("[stats] metrics", cfg->stats.metrics);
}

// Parses an integer option value; "" on success, else the reason.
std::string parse_int_value(std::string_view flag, std::string_view v, int64_t lo, int64_t hi,
                            std::optional<int>* out) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size()) {
    return "invalid value for " + std::string(flag) + ": '" + std::string(v) +
           "' is not an integer";
  }
  if (n < lo || n > hi) {
    return "invalid value for " + std::string(flag) + ": " + std::string(v) + " (must be " +
           std::to_string(lo) + ".." + std::to_string(hi) + ")";
  }
  *out = static_cast<int>(n);
  return "";
}

enum class Opt {
  kConfig,
  kCheck,
  kVersion,
  kHelp,
  kHttp,
  kUwsgi,
  kWorkers,
  kCores,
  kWsgiFile,
  kModule,
  kStats,
  kPidfile,
  kLoop,
  kNoEffect
};

struct OptionSpec {
  std::string_view name;
  Opt opt;
  bool takes_value;
};

constexpr OptionSpec kOptions[] = {
    {"-c", Opt::kConfig, true},
    {"--config", Opt::kConfig, true},
    {"--check", Opt::kCheck, false},
    {"--version", Opt::kVersion, false},
    {"-h", Opt::kHelp, false},
    {"--help", Opt::kHelp, false},
    {"--http", Opt::kHttp, true},
    {"--http-socket", Opt::kHttp, true},
    {"--uwsgi-socket", Opt::kUwsgi, true},
    {"--socket", Opt::kUwsgi, true},
    {"-p", Opt::kWorkers, true},
    {"--workers", Opt::kWorkers, true},
    {"--processes", Opt::kWorkers, true},
    {"--cores", Opt::kCores, true},
    {"--asyncio", Opt::kCores, true},
    {"--wsgi-file", Opt::kWsgiFile, true},
    {"--module", Opt::kModule, true},
    {"--wsgi", Opt::kModule, true},
    {"--stats", Opt::kStats, true},
    {"--pidfile", Opt::kPidfile, true},
    {"--loop", Opt::kLoop, true},
    {"--greenlet", Opt::kNoEffect, false},
    {"--master", Opt::kNoEffect, false},
};

const OptionSpec* find_option(std::string_view name) {
  for (const OptionSpec& o : kOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

}  // namespace

bool parse_command_line(int argc, char** argv, CommandLine* out, std::string* error) {
  CommandLine cl;
  bool help = false, version = false, check = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;
    if (arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {
      // "--opt=value"
      if (size_t eq = arg.find('='); eq != std::string_view::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    } else if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
      // "-cFILE", "-p4"
      name = arg.substr(0, 2);
      inline_value = arg.substr(2);
    }
    const OptionSpec* spec = find_option(name);
    if (spec == nullptr) {
      if (arg.empty() || arg[0] != '-') {
        *error = "unexpected argument '" + std::string(arg) + "' (see --help)";
      } else {
        *error = "unknown option '" + std::string(name) + "' (see --help)";
      }
      return false;
    }
    std::string_view value;
    if (spec->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        *error = "option " + std::string(name) + " needs a value (see --help)";
        return false;
      }
      if (value.empty()) {
        *error = "option " + std::string(name) + " needs a non-empty value";
        return false;
      }
    } else if (inline_value) {
      *error = "option " + std::string(name) + " takes no value";
      return false;
    }
    std::string why;
    switch (spec->opt) {
      case Opt::kConfig:
        if (!cl.config_file.empty()) {
          why = "option " + std::string(name) + " given twice: only one config file is read";
        }
        cl.config_file = std::string(value);
        break;
      case Opt::kCheck:
        check = true;
        break;
      case Opt::kVersion:
        version = true;
        break;
      case Opt::kHelp:
        help = true;
        break;
      case Opt::kHttp:
        cl.http.emplace_back(value);
        break;
      case Opt::kUwsgi:
        cl.uwsgi.emplace_back(value);
        break;
      case Opt::kWorkers:
        why = parse_int_value(name, value, kMinWorkers, kMaxWorkers, &cl.workers);
        break;
      case Opt::kCores:
        why = parse_int_value(name, value, kMinCores, kMaxCores, &cl.cores);
        break;
      case Opt::kWsgiFile:
        cl.wsgi_file = std::string(value);
        break;
      case Opt::kModule:
        cl.module = std::string(value);
        if (std::string bad = check_module(value); !bad.empty()) {
          why = "invalid value for " + std::string(name) + ": '" + std::string(value) + "' " + bad;
        }
        break;
      case Opt::kStats:
        cl.stats = std::string(value);
        break;
      case Opt::kPidfile:
        cl.pidfile = std::string(value);
        break;
      case Opt::kLoop:
        if (value != "asyncio" && value != "uvloop") {
          why =
              "invalid value for --loop: '" + std::string(value) + "' (must be asyncio or uvloop)";
        }
        cl.loop = std::string(value);
        break;
      case Opt::kNoEffect:
        // uWSGI spellings: cores are always greenlets and there is always a master.
        break;
    }
    if (!why.empty()) {
      *error = why;
      return false;
    }
  }
  if (cl.wsgi_file && cl.module) {
    *error = "--wsgi-file and --module both given: the app comes from one of them";
    return false;
  }
  cl.action = help      ? CommandLine::Action::kHelp
              : version ? CommandLine::Action::kVersion
              : check   ? CommandLine::Action::kCheck
                        : CommandLine::Action::kRun;
  *out = std::move(cl);
  return true;
}

bool load_config(const CommandLine& cli, Config* out, std::vector<std::string>* errors) {
  Config cfg;
  cfg.server.workers = default_workers();
  ErrorList errs;
  Origins origins;
  const fs::path cwd = current_dir();
  std::string origin = "command line";

  if (!cli.config_file.empty()) {
    origin = cli.config_file;
    fs::path abs = fs::path(cli.config_file);
    if (abs.is_relative()) abs = cwd / abs;
    abs = abs.lexically_normal();
    cfg.config_file = abs.string();
    std::string text;
    if (Status st = read_file(cfg.config_file, &text); !st.ok()) {
      errs.add(cli.config_file + ": " + st.message());
      origins.file_failed = true;
    } else {
      FileLoader loader(cli.config_file, abs.parent_path(), &cfg, &errs, &origins);
      loader.load(text, cfg.config_file);
    }
  }

  apply_command_line(cli, cwd, &cfg, &errs, &origins);
  check_combination(origin, origins, &cfg, &errs);

  errors->clear();
  if (!errs.empty()) {
    *errors = errs.take();
    return false;
  }
  *out = std::move(cfg);
  return true;
}

const char* usage_text() {
  return R"(usage: aiowsgi-master [options]

  aiowsgi-master -c server.toml                run from a config file
  aiowsgi-master --http 127.0.0.1:9090 --wsgi-file app.py [--cores 10] [--workers 2]
  aiowsgi-master --check -c server.toml        validate the config; exit 0, or 1 with errors

Options (command-line values override the config file; relative paths are relative to the
current directory, relative paths in the file to the file's folder):
  -c, --config FILE         read settings from FILE (TOML, see aiowsgi.toml(5))
      --check               validate the configuration and exit
      --version             print the version and exit
  -h, --help                print this help and exit
      --http ADDR           HTTP listener, repeatable; replaces [server] listen
                            ADDR: HOST:PORT, :PORT, [IPv6]:PORT or unix:/path
      --http-socket ADDR    same as --http (uWSGI spelling)
      --uwsgi-socket ADDR   uwsgi-protocol listener, repeatable; replaces [server] uwsgi_listen
      --socket ADDR         same as --uwsgi-socket (uWSGI spelling)
  -p, --workers N           worker processes (1..1024; default: number of CPUs)
      --processes N         same as --workers (uWSGI spelling)
      --cores N             requests in flight per worker, one greenlet each (1..100000)
      --asyncio N           same as --cores (uWSGI spelling)
      --wsgi-file FILE      load the WSGI app from a Python file
      --module MOD[:CALL]   load the WSGI app from a module (callable default: application)
      --wsgi MOD[:CALL]     same as --module (uWSGI spelling)
      --stats ADDR          serve JSON statistics on ADDR
      --pidfile FILE        write the master's pid to FILE
      --loop NAME           asyncio or uvloop
      --greenlet            accepted for uWSGI compatibility (cores are always greenlets)
      --master              accepted for uWSGI compatibility (there is always a master)

Options take their value as "--opt value" or "--opt=value".
)";
}

}  // namespace aiowsgi::config
