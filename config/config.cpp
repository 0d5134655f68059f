// load_config: defaults, then the file pass, the command-line pass and the cross-field checks
// (config/load_steps.h), every problem collected for the user at once. Master only; no Python.
#include "config/config.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "common/unique_fd.h"
#include "config/load_steps.h"
#include "config/uwsgi_ini.h"
#include "config/uwsgi_options.h"
#include "config/values.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

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

fs::path current_dir() {
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  return ec ? fs::path("/") : cwd;
}

// load_config's body; |text|, when not null, is the config file's contents (not read again).
bool load_config_impl(const CommandLine& cli, const std::string* text, Config* out,
                      std::vector<std::string>* errors) {
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
    Result<std::string> read = text ? Result<std::string>(*text) : read_file(cfg.config_file);
    if (!read.ok()) {
      errs.add(cli.config_file + ": " + read.status().message());
      origins.file_failed = true;
    } else {
      load_file(cli.config_file, *read, cfg.config_file, abs.parent_path(), &cfg, &errs, &origins);
    }
  }

  if (!cli.ini_file.empty()) {
    origin = cli.ini_file;
    // uWSGI starts one worker unless the file says otherwise.
    cfg.server.workers = 1;
    std::vector<std::string> ini_errors;
    IniWorld world = real_ini_world();
    std::vector<IniOption> options = read_uwsgi_ini(cli.ini_file, world, &ini_errors);
    UwsgiTranslation t = translate_uwsgi_options(options);
    for (std::string& e : ini_errors) errs.add(std::move(e));
    for (std::string& e : t.errors) errs.add(std::move(e));
    // uWSGI resolves relative paths against the directory it was started in.
    apply_settings(t.settings, cwd, &cfg, &errs, &origins);
    cfg.notes = std::move(t.notes);
  }
  if (!cli.uwsgi_options.empty()) {
    std::vector<IniOption> options;
    for (const auto& [name, value] : cli.uwsgi_options) {
      options.push_back({.name = name, .value = value, .file = "command line"});
    }
    UwsgiTranslation t = translate_uwsgi_options(options);
    for (std::string& e : t.errors) errs.add(std::move(e));
    apply_settings(t.settings, cwd, &cfg, &errs, &origins);
    for (std::string& n : t.notes) cfg.notes.push_back(std::move(n));
  }
  apply_command_line(cli, cwd, &cfg, &errs, &origins);
  if (!origins.file_failed) {
    check_listeners(origin, origins, cfg, &errs);
    check_app(origin, origins, &cfg, &errs);
    use_virtual_env_variable(cwd, &cfg, &errs);
    use_forwarded_allow_ips_variable(origins, &cfg, &errs);
    order_static_map(&cfg);
    check_distinct_addresses(origin, cfg, &errs);
    check_tls(origin, cfg, &errs);
  }

  errors->clear();
  if (!errs.empty()) {
    *errors = errs.take();
    return false;
  }
  *out = std::move(cfg);
  return true;
}

}  // namespace

// O_CLOEXEC like every fd here: the master reads the config on reload, between forks of
// workers that must not inherit it.
Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Io("cannot open", errno);
  struct stat st {};
  if (fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Io("cannot read", EISDIR);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Io("cannot read", errno);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void ErrorList::at(const std::string& file, uint32_t line, uint32_t column,
                   const std::string& msg) {
  located_.emplace_back(
      line, column,
      one_line(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + msg));
}

void ErrorList::add(std::string msg) { plain_.push_back(one_line(msg)); }

std::vector<std::string> ErrorList::take() {
  std::stable_sort(located_.begin(), located_.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  std::vector<std::string> all;
  for (auto& e : located_) all.push_back(std::move(std::get<2>(e)));
  for (auto& e : plain_) all.push_back(std::move(e));
  return all;
}

bool load_config(const CommandLine& cli, Config* out, std::vector<std::string>* errors) {
  return load_config_impl(cli, nullptr, out, errors);
}

bool load_config_from_string(const std::string& text, const std::string& path, Config* out,
                             std::vector<std::string>* errors) {
  CommandLine cli;
  cli.config_file = path;
  return load_config_impl(cli, &text, out, errors);
}

}  // namespace aiowsgi::config
