// The command line: parse_command_line (argv into a CommandLine) and the command-line pass of
// load_config (its settings onto the Config). Flags come from the key table
// (config/keys.cpp); values are checked by the same rules as the file's (config/values.cpp).
// Master only; no Python.
#include "config/command_line.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/keys.h"
#include "config/load_steps.h"
#include "config/suggest.h"
#include "config/uwsgi_options.h"
#include "config/values.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

constexpr Option kOptions[] = {
    {"--config", 'c', Option::Kind::kConfig, "FILE",
     "read settings from FILE (TOML, see aiowsgi.toml(5))"},
    {"--ini", 0, Option::Kind::kIni, "FILE[:SECTION]",
     "read a uWSGI ini file (section [uwsgi] by default; see aiowsgi.toml(5))"},
    {"--check", 0, Option::Kind::kCheck, "", "validate the configuration and exit"},
    {"--print-toml", 0, Option::Kind::kPrintToml, "",
     "print the configuration as server.toml (from --ini: the migration) and exit"},
    {"--print-keys", 0, Option::Kind::kPrintKeys, "",
     "print every config key as \"[table] key\", one per line, and exit"},
    {"--version", 0, Option::Kind::kVersion, "", "print the version and exit"},
    {"--help", 'h', Option::Kind::kHelp, "", "print this help and exit"},
    {"--reload", 0, Option::Kind::kReload, "",
     "development: reload when an imported .py file changes ([app] reload = true)"},
    {"--py-autoreload", 0, Option::Kind::kPyAutoreload, "N",
     "uWSGI spelling: N > 0 is --reload, 0 turns it off"},
};

const Option* find_option(std::string_view name) {
  for (const Option& o : kOptions) {
    if (o.name == name) return &o;
    if (o.short_name != 0 && name.size() == 2 && name[0] == '-' && name[1] == o.short_name) {
      return &o;
    }
  }
  return nullptr;
}

Status usage_error(std::string msg) { return Status::Config(std::move(msg)); }

// What the parser checks of a flag's value: the rules that need neither the file nor the
// filesystem. "invalid value for --workers: 0 (must be 1..1024)".
Status check_flag_value(std::string_view flag, const Key& key, std::string_view text) {
  Result<Value> v = parse_text(key, text);
  if (!v.ok()) {
    return usage_error("invalid value for " + std::string(flag) + ": " + v.status().message());
  }
  if (Status st = check_value(key, *v); !st.ok()) {
    // Appended, not "'" + std::string(text): GCC 12 at -O3 reports a false -Wrestrict
    // overlap in the inlined operator+(const char*, std::string&&).
    bool quoted = std::holds_alternative<std::string>(*v);
    std::string shown = quoted ? "'" : "";
    shown.append(text).append(quoted ? "'" : "");
    return usage_error("invalid value for " + std::string(flag) + ": " + shown + " (" +
                       st.message() + ")");
  }
  return Status::Ok();
}

bool is_bool_text(std::string_view v) {
  return v == "true" || v == "false" || v == "1" || v == "0" || v == "yes" || v == "no" ||
         v == "on" || v == "off";
}

// "--OPTION [VALUE]" that is no flag here but a uWSGI option the --ini table knows: recorded
// for the same translation as an ini line (config/uwsgi_options.h). Unknown names are
// errors, with the closest flag.
Status take_uwsgi_option(int argc, char** argv, int* i, std::string_view name,
                         std::optional<std::string_view> inline_value, CommandLine* cl) {
  UwsgiArity arity = name.size() > 2 && name.substr(0, 2) == "--"
                         ? uwsgi_option_arity(name.substr(2))
                         : UwsgiArity::kUnknown;
  if (arity == UwsgiArity::kUnknown) {
    std::vector<std::string_view> flags;
    for (const Option& o : kOptions) flags.push_back(o.name);
    for (const Key& k : keys()) {
      if (!k.flag.name.empty()) flags.push_back(k.flag.name);
    }
    // uWSGI's names too ("--procesess" is a misspelt --processes).
    std::vector<std::string> uwsgi;
    for (std::string& n : mapped_uwsgi_options()) uwsgi.push_back("--" + n);
    for (const std::string& n : uwsgi) flags.push_back(n);
    return usage_error("unknown option '" + std::string(name) + "'" + did_you_mean(name, flags) +
                       " (see --help)");
  }
  std::string_view next = *i + 1 < argc ? std::string_view(argv[*i + 1]) : std::string_view();
  std::string_view value;
  if (inline_value) {
    value = *inline_value;
  } else if (arity == UwsgiArity::kSwitch) {
    if (is_bool_text(next)) value = argv[++*i];
  } else if (arity == UwsgiArity::kOptionalValue) {
    if (!next.empty() && next.front() != '-') value = argv[++*i];
  } else if (*i + 1 < argc) {
    value = argv[++*i];
  } else {
    return usage_error("option " + std::string(name) + " needs a value (see --help)");
  }
  cl->uwsgi_options.emplace_back(std::string(name.substr(2)), std::string(value));
  return Status::Ok();
}

}  // namespace

std::span<const Option> options() { return kOptions; }

Status CommandLine::set(std::string_view flag, std::string value) {
  const Key* key = find_flag(flag);
  if (key == nullptr) return usage_error("unknown option '" + std::string(flag) + "'");
  settings.push_back({key, std::move(value)});
  return Status::Ok();
}

std::vector<std::string> CommandLine::values(std::string_view table, std::string_view key) const {
  std::vector<std::string> out;
  for (const Setting& s : settings) {
    if (s.key->table == table && s.key->name == key) out.push_back(s.value);
  }
  return out;
}

Result<CommandLine> parse_command_line(int argc, char** argv) {
  CommandLine cl;
  bool help = false, version = false, check = false, print_keys = false, print_toml = false;
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
    const Option* option = find_option(name);
    const Key* key = option == nullptr ? find_flag(name) : nullptr;
    if (option == nullptr && key == nullptr) {
      if (arg.empty() || arg[0] != '-') {
        return usage_error("unexpected argument '" + std::string(arg) + "' (see --help)");
      }
      if (Status st = take_uwsgi_option(argc, argv, &i, name, inline_value, &cl); !st.ok()) {
        return st;
      }
      continue;
    }
    std::string_view value;
    if (key != nullptr && key->type == Type::kBool && !inline_value &&
        (i + 1 >= argc ||
         (std::string_view(argv[i + 1]) != "true" && std::string_view(argv[i + 1]) != "false"))) {
      value = "true";  // a switch: "--preload" alone; "--preload false" and "=false" work too
    } else if (key != nullptr || !option->metavar.empty()) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return usage_error("option " + std::string(name) + " needs a value (see --help)");
      }
      if (value.empty()) {
        return usage_error("option " + std::string(name) + " needs a non-empty value");
      }
    } else if (inline_value) {
      return usage_error("option " + std::string(name) + " takes no value");
    }
    if (key != nullptr) {
      for (const std::string& element : list_elements(*key, value)) {
        if (Status st = check_flag_value(name, *key, element); !st.ok()) return st;
      }
      cl.settings.push_back({key, std::string(value)});
      continue;
    }
    switch (option->kind) {
      case Option::Kind::kConfig:
        if (!cl.config_file.empty()) {
          return usage_error("option " + std::string(name) +
                             " given twice: only one config file is read");
        }
        cl.config_file = std::string(value);
        break;
      case Option::Kind::kIni:
        if (!cl.ini_file.empty()) {
          return usage_error("option " + std::string(name) +
                             " given twice: only one config file is read");
        }
        cl.ini_file = std::string(value);
        break;
      case Option::Kind::kCheck:
        check = true;
        break;
      case Option::Kind::kPrintToml:
        print_toml = true;
        break;
      case Option::Kind::kPrintKeys:
        print_keys = true;
        break;
      case Option::Kind::kVersion:
        version = true;
        break;
      case Option::Kind::kHelp:
        help = true;
        break;
      case Option::Kind::kReload:
        cl.settings.push_back({find_key("app", "reload"), "true"});
        break;
      case Option::Kind::kPyAutoreload: {
        // uWSGI's polling interval in seconds; here only on (N > 0) or off (0) matters: changes
        // are seen through inotify as they happen.
        int64_t n = -1;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
          return usage_error("invalid value for " + std::string(name) + ": '" + std::string(value) +
                             "' (must be an integer >= 0)");
        }
        cl.settings.push_back({find_key("app", "reload"), n > 0 ? "true" : "false"});
        break;
      }
    }
  }
  auto given = [&](Role role) {
    return std::any_of(cl.settings.begin(), cl.settings.end(),
                       [&](const CommandLine::Setting& s) { return s.key->role == role; });
  };
  if (given(Role::kAppFile) && given(Role::kAppModule)) {
    return usage_error("--wsgi-file and --module both given: the app comes from one of them");
  }
  if (!cl.ini_file.empty() && !cl.config_file.empty()) {
    return usage_error("--ini and --config both given: only one config file is read");
  }
  cl.action = help         ? CommandLine::Action::kHelp
              : version    ? CommandLine::Action::kVersion
              : print_keys ? CommandLine::Action::kPrintKeys
              : print_toml ? CommandLine::Action::kPrintToml
              : check      ? CommandLine::Action::kCheck
                           : CommandLine::Action::kRun;
  return cl;
}

void apply_command_line(const CommandLine& cli, const fs::path& cwd, Config* cfg, ErrorList* errors,
                        Origins* origins) {
  apply_settings(cli.settings, cwd, cfg, errors, origins);
}

void apply_settings(const std::vector<CommandLine::Setting>& settings, const fs::path& base,
                    Config* cfg, ErrorList* errors, Origins* origins) {
  // An app named on the command line replaces the file's choice of app, whichever kind it was:
  // `-c server.toml --module other:app` must not fail with "both wsgi_file and module".
  for (const CommandLine::Setting& s : settings) {
    if (s.key->role == Role::kAppFile || s.key->role == Role::kAppModule) {
      cfg->app.wsgi_file.clear();
      cfg->app.module.clear();
      origins->wsgi_file.clear();
      break;
    }
  }
  std::set<const Key*> replaced;  // array keys whose file value the flags replaced
  for (const CommandLine::Setting& s : settings) {
    const Key& key = *s.key;
    const std::string origin = !s.origin.empty()
                                   ? s.origin
                                   : "command line: " + std::string(key.flag.name) + " " + s.value;
    Status st;
    if (is_table(key)) {
      size_t eq = s.value.find('=');
      if (eq == std::string::npos) {
        st = Status::Config("expected " + metavar(key) + " (\"/static/=/srv/static\")");
      } else if (Result<Entry> e =
                     accept_entry(key, Entry(s.value.substr(0, eq), s.value.substr(eq + 1)), base);
                 !e.ok()) {
        st = e.status();
      } else {
        if (!key.flag.adds && replaced.insert(&key).second) clear(key, cfg);
        store_entry(key, std::move(e).value(), cfg);
      }
    } else {
      if (is_array(key) && !key.flag.adds && replaced.insert(&key).second) clear(key, cfg);
      for (const std::string& element : list_elements(key, s.value)) {
        Result<Value> v = parse_text(key, element);
        if (v.ok()) v = accept(key, std::move(v).value(), base);
        if (!v.ok()) {
          st = v.status();
          break;
        }
        store(key, std::move(v).value(), cfg);
        if (key.role == Role::kAppFile) origins->wsgi_file = origin;
      }
    }
    origins->given.insert(&key);
    if (!st.ok()) {
      errors->add(origin + ": " + st.message());
      if (key.role == Role::kListener) origins->listen_error = true;
      if (key.role == Role::kAppFile || key.role == Role::kAppModule) origins->app_error = true;
    }
  }
}

}  // namespace aiowsgi::config
