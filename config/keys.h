// The key table: one row per server.toml key, {table, key, type, range or choices, flag and
// uWSGI spelling, uwsgi.opt name, the Config field it sets, one-line doc}. The file loader,
// the command line, --help, --print-keys and uwsgi.opt are all driven from it, so adding a
// key is one row. Master and workers (read-only after load); no Python.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.h"

namespace aiowsgi::config {

// What a key holds and how its values are checked (config/values.cpp has the rules).
enum class Type {
  kInt,              // integer in [min, max]
  kFileMode,         // permission bits, octal text ("660") or a TOML integer (0o660), 0..0o777
  kSeconds,          // integer or float, 0..kMaxSeconds
  kPositiveSeconds,  // the same, but not 0 (a timeout of 0 would fire at once)
  kBool,
  kChoice,       // one of |choices|
  kPythonName,   // a dotted Python name ("application")
  kModule,       // "package.module" or "package.module:callable"
  kPath,         // a path, resolved against the file's folder (or the current directory)
  kDirectory,    // a path that must name an existing directory
  kVirtualenv,   // a path that must name a venv of the embedded Python (config/virtualenv.h)
  kUser,         // a user name or numeric uid
  kGroup,        // a group name or numeric gid
  kAddress,      // a listen address, "" = none
  kTcpAddress,   // a listen address that must be HOST:PORT, "" = none
  kAddressList,  // an array of listen addresses
  kPathList,     // an array of paths
  kEnv,          // a table NAME = "value"
  kStaticMap,    // a table "/prefix/" = "folder"
  kNetworkList,  // an array of IP addresses, CIDR networks or "*"
  kUrlPrefix,    // "" or a URL path prefix "/app" (common/url_prefix.h)
  kHeaderList,   // an array of response header fields "Name: value"
  kRegexExpiry,  // an array of "REGEX SECONDS" (POSIX extended regex, common/posix_regex.h)
  kTypeExpiry,   // an array of "TYPE/SUBTYPE SECONDS"
};

// The Config field a key sets.
using Field = std::variant<int*, int64_t*, double*, bool*, std::string*, std::vector<std::string>*,
                           std::vector<std::pair<std::string, std::string>>*>;

// Keys whose value the cross-field checks (config/checks.cpp) need to know the origin of.
enum class Role { kNone, kListener, kAppFile, kAppModule };

// The command-line flag that sets a key.
struct Flag {
  std::string_view name;             // "--workers", or "" when the key has no flag
  std::string_view uwsgi;            // uWSGI's spelling, "--processes", or ""
  std::string_view uwsgi_also = "";  // a second uWSGI spelling ("--home" besides "--venv")
  char short_name = 0;               // 'p' for -p, or 0
  // Whether repeated flags replace the file's value (listeners) or add to it (static map).
  bool adds = false;
};

struct Key {
  std::string_view table;
  std::string_view name;
  Type type;
  Field (*field)(Config&);
  std::string_view doc;  // one line, for --help
  int64_t min = 0, max = 0;
  std::span<const std::string_view> choices = {};
  Flag flag = {};
  std::string_view uwsgi_opt = "";  // the key's name in uwsgi.opt, "" = not shown there
  // More uWSGI option names for this key in --ini files, space-separated ("http"), beside
  // the flag's uWSGI spelling and |uwsgi_opt|, which count too.
  std::string_view uwsgi_more = "";
  std::string_view metavar = "";       // for --help; "" = the type's ("N", "ADDR", ...)
  std::string_view default_note = "";  // for --help when Config{}'s value is not the default
  Role role = Role::kNone;
};

// Every key, grouped by table in the order of |tables()|.
std::span<const Key> keys();
// The tables, in the order they are documented: "server", "app", ...
std::span<const std::string_view> tables();

const Key* find_key(std::string_view table, std::string_view name);
// The key set by a flag in any spelling ("--processes", "-p"), or null.
const Key* find_flag(std::string_view flag);

// The key a uWSGI option name ("http-socket", "processes", "logto") sets as it is, or null.
const Key* find_uwsgi_key(std::string_view option);
// Every uWSGI option name find_uwsgi_key knows.
std::vector<std::string_view> uwsgi_key_names();

// The default as --help shows it ("100", "\"asyncio\"", "number of CPUs"), "" when none.
std::string default_text(const Key& key);
// The value placeholder for --help ("N", "ADDR", "asyncio|uvloop").
std::string metavar(const Key& key);

// One uWSGI option as the uwsgi module's `opt` dict shows it, for the keys that have one.
struct UwsgiOption {
  enum class Kind { kTrue, kNumber, kText };
  std::string_view name;
  Kind kind = Kind::kText;
  double number = 0;               // kNumber
  std::vector<std::string> texts;  // kText: one value, or several (shown as a list)
};
// Calls |fn| for every uWSGI option the config sets (zero numbers, empty strings and lists and
// false flags are left out, as uWSGI leaves out options not given), in a stable order.
void for_each_uwsgi_option(const Config& config, const std::function<void(const UwsgiOption&)>& fn);

}  // namespace aiowsgi::config
