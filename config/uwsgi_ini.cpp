// uWSGI's ini syntax, read line by line (see config/uwsgi_ini.h). Our own reader, written
// from uWSGI's documentation ("Configuration", "Magic variables", "Configuration logic").
#include "config/uwsgi_ini.h"

#include <sched.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <system_error>

#include "config/load_steps.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

// Includes nest at most this deep: `ini = self.ini` must end with an error, not a loop.
constexpr int kMaxIncludeDepth = 16;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

class IniReader {
 public:
  IniReader(const IniWorld& world, std::vector<std::string>* errors)
      : world_(world), errors_(errors) {}

  // Reads |path| (named |label| in messages), keeping the lines of [section].
  void read(const std::string& label, const fs::path& path, const std::string& section, int depth) {
    std::string why;
    std::optional<std::string> text = world_.read(path.string(), &why);
    if (!text) {
      errors_->push_back(label + ": " + why);
      return;
    }
    File file{label, path, section};
    std::string_view rest = *text;
    int line_no = 0;
    bool in_section = false;
    // One entry per open if-block: whether its lines count. Blocks nest; a block inside a
    // skipped one is skipped whatever its condition.
    std::vector<bool> blocks;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view raw = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      ++line_no;
      std::string_view line = trim(raw);
      if (line.empty() || line.front() == ';' || line.front() == '#') continue;
      if (line.front() == '[') {
        if (line.back() != ']') {
          error(file, line_no, std::string(line) + ": expected [section]");
          continue;
        }
        in_section = trim(line.substr(1, line.size() - 2)) == section;
        continue;
      }
      if (!in_section) continue;
      size_t eq = line.find('=');
      if (eq == std::string_view::npos) {
        error(file, line_no, std::string(line) + ": expected name = value");
        continue;
      }
      std::string name(trim(line.substr(0, eq)));
      std::string_view raw_value = trim(line.substr(eq + 1));
      bool active = blocks.empty() || blocks.back();
      if (name == "endif") {
        if (blocks.empty()) {
          error(file, line_no, "endif: no if-block is open");
        } else {
          blocks.pop_back();
          if (blocks.empty() || blocks.back()) block_value_.clear();
        }
        continue;
      }
      bool is_if = name == "if-env" || name == "if-not-env" || name == "if-exists" ||
                   name == "if-not-exists";
      if (!active) {
        if (is_if) blocks.push_back(false);
        continue;
      }
      std::string value = expand(file, line_no, raw_value);
      if (is_if) {
        bool yes = false;
        if (name == "if-env" || name == "if-not-env") {
          std::optional<std::string> v = world_.getenv(value);
          yes = v.has_value() && !v->empty();
          if (yes) block_value_ = *v;
          if (name == "if-not-env") yes = !yes;
        } else {
          fs::path p = value;
          if (p.is_relative()) p = fs::path(world_.cwd) / p;
          yes = world_.exists(p.string());
          if (yes) block_value_ = value;
          if (name == "if-not-exists") yes = !yes;
        }
        blocks.push_back(yes);
        continue;
      }
      if (name == "ini") {
        include(file, line_no, value, depth);
        continue;
      }
      last_[name] = value;
      options_.push_back({name, value, label, line_no});
    }
    if (!blocks.empty()) error(file, line_no, "if-block not closed (missing endif)");
  }

  std::vector<IniOption> take() {
    for (IniOption& o : options_) o.variable = referenced_.count(o.name) > 0;
    return std::move(options_);
  }

 private:
  struct File {
    std::string label;
    fs::path path;
    std::string section;
  };

  void error(const File& file, int line, const std::string& msg) {
    errors_->push_back(file.label + ":" + std::to_string(line) + ": " + msg);
  }

  // `ini = other.ini[:section]`: relative to the including file's folder.
  void include(const File& file, int line, const std::string& spec, int depth) {
    if (depth + 1 >= kMaxIncludeDepth) {
      error(file, line,
            "ini = " + spec + ": includes nest more than " + std::to_string(kMaxIncludeDepth) +
                " deep (a loop?)");
      return;
    }
    std::string name, section;
    split_ini_spec(spec, &name, &section);
    fs::path p = name;
    if (p.is_relative()) p = file.path.parent_path() / p;
    read(name, p.lexically_normal(), section, depth + 1);
  }

  // uWSGI's magic variables of |file|, by letter.
  std::optional<std::string> magic(const File& file, char c) const {
    fs::path abs = file.path;
    switch (c) {
      case 'd':
        return abs.parent_path().string() + "/";
      case 'p':
        return abs.string();
      case 's':
        return abs.filename().string();
      case 'n':
        return abs.stem().string();
      case 'e': {
        std::string ext = abs.extension().string();
        return ext.empty() ? ext : ext.substr(1);
      }
      case 'c':
        return abs.parent_path().filename().string();
      case 'x':
        return abs.filename().string() + ":" + file.section;
      case 'k':
        return std::to_string(world_.cpu_count);
      case '%':
        return std::string("%");
      default:
        return std::nullopt;
    }
  }

  // Resolves %(name), $(NAME) and %X in one value. Unknown magic letters stay as written, as
  // uWSGI leaves them; an unknown %(name) is an error, since the value would be wrong.
  std::string expand(const File& file, int line, std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      char c = v[i];
      if ((c == '%' || c == '$') && i + 1 < v.size() && v[i + 1] == '(') {
        size_t close = v.find(')', i + 2);
        if (close == std::string_view::npos) {
          out.append(v.substr(i));
          break;
        }
        std::string name(v.substr(i + 2, close - i - 2));
        if (c == '$') {
          out += world_.getenv(name).value_or("");
        } else if (name == "_") {
          out += block_value_;
        } else if (auto it = last_.find(name); it != last_.end()) {
          out += it->second;
          referenced_.insert(name);
        } else if (name.size() == 1 && magic(file, name[0])) {
          out += *magic(file, name[0]);
        } else {
          error(file, line,
                "%(" + name + "): unknown reference (no option '" + name +
                    "' is set before this line)");
        }
        i = close;
      } else if (c == '%' && i + 1 < v.size()) {
        if (std::optional<std::string> m = magic(file, v[i + 1])) {
          out += *m;
          ++i;
        } else {
          out += c;
        }
      } else {
        out += c;
      }
    }
    return out;
  }

  const IniWorld& world_;
  std::vector<std::string>* errors_;
  std::vector<IniOption> options_;
  std::map<std::string, std::string> last_;  // each option's latest value, for %(name)
  std::string block_value_;                  // %(_): the innermost if-block's value
  std::set<std::string> referenced_;         // the names %(name) used
};

}  // namespace

IniWorld real_ini_world() {
  IniWorld w;
  w.read = [](const std::string& path, std::string* error) -> std::optional<std::string> {
    Result<std::string> text = read_file(path);
    if (!text.ok()) {
      *error = text.status().message();
      return std::nullopt;
    }
    return std::move(text).value();
  };
  w.getenv = [](const std::string& name) -> std::optional<std::string> {
    // The master reads its config before it starts any thread.
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  w.exists = [](const std::string& path) {
    std::error_code ec;
    return fs::exists(path, ec);
  };
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) w.cpu_count = CPU_COUNT(&set);
  std::error_code ec;
  w.cwd = fs::current_path(ec).string();
  return w;
}

void split_ini_spec(const std::string& spec, std::string* file, std::string* section) {
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size() ||
      spec.find('/', colon) != std::string::npos) {
    *file = spec;
    *section = "uwsgi";
    return;
  }
  *file = spec.substr(0, colon);
  *section = spec.substr(colon + 1);
}

std::vector<IniOption> read_uwsgi_ini(const std::string& spec, const IniWorld& world,
                                      std::vector<std::string>* errors) {
  std::string name, section;
  split_ini_spec(spec, &name, &section);
  fs::path p = name;
  if (p.is_relative()) p = fs::path(world.cwd) / p;
  IniReader reader(world, errors);
  reader.read(name, p.lexically_normal(), section, 0);
  return reader.take();
}

}  // namespace aiowsgi::config
