#include "config/virtualenv.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "config/load_steps.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// "3.11.2" -> "3.11": venvs of one minor version share the stdlib and the C ABI.
std::string major_minor(std::string_view version) {
  size_t first = version.find('.');
  if (first == std::string_view::npos) return std::string(version);
  size_t second = version.find('.', first + 1);
  return std::string(version.substr(0, second));
}

// What every message ends with: the user needs both versions to see what to rebuild.
std::string embedded_note() {
  return std::string("aiowsgi embeds Python ").append(embedded_python_version());
}

std::string recreate_hint(const std::string& dir) {
  return std::string("make it with ").append(embedded_python_executable()) + " -m venv " + dir;
}

// The greenlet versions pip recorded in |site_packages| ("greenlet-3.0.1.dist-info",
// "greenlet-0.4.0-py3.11.egg-info"), empty when the venv holds none.
std::vector<std::string> installed_greenlets(const fs::path& site_packages) {
  std::vector<std::string> found;
  std::error_code ec;
  for (fs::directory_iterator it(site_packages, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    constexpr std::string_view kPrefix = "greenlet-";
    if (name.rfind(kPrefix, 0) != 0) continue;
    bool dist = name.ends_with(".dist-info"), egg = name.ends_with(".egg-info");
    if (!dist && !egg) continue;
    std::string_view rest = std::string_view(name).substr(kPrefix.size());
    rest.remove_suffix(dist ? std::string_view(".dist-info").size()
                            : std::string_view(".egg-info").size());
    found.emplace_back(rest.substr(0, rest.find('-')));  // egg-info: "0.4.0-py3.11"
  }
  return found;
}

}  // namespace

std::string_view embedded_python_version() { return AIOWSGI_PYTHON_VERSION; }
std::string_view embedded_python_executable() { return AIOWSGI_PYTHON_BINARY; }
std::string_view built_greenlet_version() { return AIOWSGI_GREENLET_VERSION; }

Result<PyvenvCfg> parse_pyvenv_cfg(std::string_view text) {
  PyvenvCfg cfg;
  bool have_home = false;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || trim(line.substr(0, eq)).empty()) {
      return Status::Config("line " + std::to_string(line_no) + " is not \"key = value\"");
    }
    std::string key(trim(line.substr(0, eq)));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value(trim(line.substr(eq + 1)));
    if (key == "home") {
      cfg.home = value;
      have_home = true;
    } else if (key == "version" || (key == "version_info" && cfg.version.empty())) {
      cfg.version = value;
    } else if (key == "include-system-site-packages") {
      std::string lower = value;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (lower != "true" && lower != "false") {
        return Status::Config("line " + std::to_string(line_no) +
                              ": include-system-site-packages = " + value +
                              " is not true or false");
      }
      cfg.include_system_site_packages = lower == "true";
    }
  }
  if (!have_home || cfg.home.empty()) return Status::Config("no \"home = FOLDER\" line");
  if (cfg.version.empty()) return Status::Config("no \"version = X.Y.Z\" line");
  return cfg;
}

Status check_virtualenv(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Config("no such directory: " + dir + " (" + embedded_note() + ")");
  }
  const std::string cfg_path = (fs::path(dir) / "pyvenv.cfg").string();
  Result<std::string> text = read_file(cfg_path);
  if (!text.ok()) {
    return Status::Config("not a virtualenv: no pyvenv.cfg in " + dir + " (" + recreate_hint(dir) +
                          "; " + embedded_note() + ")");
  }
  Result<PyvenvCfg> cfg = parse_pyvenv_cfg(*text);
  if (!cfg.ok()) {
    return Status::Config("broken virtualenv: " + cfg_path + ": " + cfg.status().message() + " (" +
                          recreate_hint(dir) + "; " + embedded_note() + ")");
  }
  if (major_minor(cfg->version) != major_minor(embedded_python_version())) {
    return Status::Config("virtualenv " + dir + " was made by Python " + cfg->version + ", but " +
                          embedded_note() + " (" + recreate_hint(dir) + ")");
  }
  const std::string python = (fs::path(dir) / "bin" / "python").string();
  if (::stat(python.c_str(), &st) != 0) {
    return Status::Config("broken virtualenv: " + python + " is missing or dangling (" +
                          recreate_hint(dir) + "; " + embedded_note() + ")");
  }
  const fs::path site_packages =
      fs::path(dir) / "lib" / ("python" + major_minor(embedded_python_version())) / "site-packages";
  for (const std::string& v : installed_greenlets(site_packages)) {
    if (v == built_greenlet_version()) continue;
    return Status::Config(
        "virtualenv " + dir + " holds greenlet " + v + ", but aiowsgi was built against greenlet " +
        std::string(built_greenlet_version()) +
        " (uninstall it from the venv: " + "the server provides its own; or install greenlet==" +
        std::string(built_greenlet_version()) + ")");
  }
  return Status::Ok();
}

}  // namespace aiowsgi::config
