// Config: the server's settings, from server.toml and the command line (see man aiowsgi.toml(5)).
// Built by the master before anything is bound or forked; workers inherit the parsed struct
// across fork and never re-read the file. No Python.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace aiowsgi::config {

// A worker judges every timeout of its requests and connections (harakiri, header, keep-alive
// and body timeouts, the graceful drain) on a timer of this period: a shorter limit could not
// be kept, so the loader refuses seconds values below it (0 keeps meaning "off" or "at once").
inline constexpr double kTimerTickSeconds = 0.25;

struct ServerConfig {
  std::vector<std::string> listen;        // HTTP listeners, as written ("HOST:PORT", "unix:/p")
  std::vector<std::string> uwsgi_listen;  // uwsgi-protocol listeners
  int workers = 0;                        // 0 in the file is an error; default: number of CPUs
  int cores = 100;
  int backlog = 1024;
  bool reuse_port = false;
  int socket_mode = 0;   // permission bits given to unix socket files; 0 = as the umask gives
  bool preload = false;  // import the app once per generation, in a preload process
  std::string pidfile;   // absolute after load ("" = none)
  std::string user;
  std::string group;
  double graceful_timeout = 30;  // seconds
  // Peers whose X-Forwarded-*, Forwarded and PROXY protocol headers are believed: addresses,
  // CIDR networks or "*" (common/ip_networks.h). Peers on unix sockets are always trusted.
  std::vector<std::string> forwarded_allow_ips = {"127.0.0.1", "::1"};
  bool proxy_protocol = false;  // every listener expects a PROXY v1/v2 header first
  // Fields added to every response the server sends for a request, as "Name: value"
  // (checked and normalized at load), uWSGI's and nginx's add_header.
  std::vector<std::string> add_header;
  // Where request bodies past [limits] buffer_body_bytes are kept while they are read, as
  // unlinked files; absolute after load, "" = $TMPDIR, else /tmp (resolved by the worker).
  std::string temp_dir;
};

struct AppConfig {
  std::string wsgi_file;  // absolute after load, or ""
  std::string module;     // "package.module" or "package.module:callable", or ""
  std::string callable = "application";
  std::string chdir;                     // absolute after load, or ""
  std::vector<std::string> python_path;  // absolute after load
  std::vector<std::pair<std::string, std::string>> env;
  std::string loop = "asyncio";  // "asyncio" | "uvloop"
  bool uwsgi_compat = true;
  // Development: watch the imported .py files (and reload_extra) and reload on a change.
  bool reload = false;
  std::vector<std::string> reload_extra;  // absolute after load; may hold glob wildcards
  // The venv the workers' Python runs in (config/virtualenv.h), absolute after load, or ""
  // for the system interpreter; from $VIRTUAL_ENV when the key is unset (then the flag is set).
  std::string virtualenv;
  bool virtualenv_from_environment = false;
  // URL prefix the app is served under (SCRIPT_NAME), normalized: "/app", or "" for none.
  std::string mount;
};

struct LimitsConfig {
  double harakiri = 0;  // seconds, 0 = off
  int64_t max_requests = 0;
  int64_t reload_on_rss_mb = 0;
  double keepalive_timeout = 5;
  double header_timeout = 10;
  int64_t max_header_bytes = 65536;
  int64_t max_header_fields = 100;  // more request header fields: 431
  double body_timeout = 60;    // seconds waiting for a body, plus 1 s per KiB received; 0 = off
  int64_t max_body_bytes = 0;  // 0 = unlimited
  // uWSGI's post-buffering: > 0 reads every request body whole before a core is taken, up to
  // this many bytes in memory and the rest in [server] temp_dir; 0 = off (the app reads the
  // body from the socket as it asks for it).
  int64_t buffer_body_bytes = 0;
  int64_t max_connections = 10000;  // open client connections per worker; at it, accepts pause
};

struct StatsConfig {
  std::string listen;
  std::string metrics;
};

struct LogConfig {
  std::string level = "info";  // trace debug info warn error
  std::string file;            // "" = stderr; absolute after load
  bool access = true;
  std::string format = "text";  // text | json
};

struct StaticConfig {
  // URL prefix ("/static/": starts and ends with '/') -> absolute folder, longest prefix
  // first (the order requests are matched in).
  std::vector<std::pair<std::string, std::string>> map;
  int64_t expires = 0;  // Cache-Control max-age in seconds; 0 = no Cache-Control header
  // uWSGI's static-expires family, "PATTERN SECONDS" each (common/expires_rule.h), checked and
  // normalized at load. The first rule that matches a file gives it Expires and
  // Cache-Control: max-age instead of |expires|; file rules are tried first, then URI rules,
  // then type rules, each list in order.
  std::vector<std::string> expires_file;  // POSIX extended regex on the file's path
  std::vector<std::string> expires_uri;   // the same on the request URI as sent (path?query)
  std::vector<std::string> expires_type;  // a media type ("text/css") of the Content-Type
};

// The certificate of the https:// listeners (paths absolute after load). Checked by the loader
// (readable, the key matches) and loaded again by each worker generation, so HUP renews it.
struct TlsConfig {
  std::string certificate;  // PEM chain
  std::string key;          // PEM private key
  std::string ca;           // PEM CA bundle; set: client certificates are required
  // Session-ticket keys change this often; a ticket is accepted for up to two periods
  // (common/tls_tickets.h).
  int64_t ticket_key_rotation = 3600;
  // kTLS where the kernel offers it; false keeps every record in OpenSSL (common/tls_context.h).
  bool kernel_tls = true;
};

struct Config {
  ServerConfig server;
  AppConfig app;
  LimitsConfig limits;
  StatsConfig stats;
  LogConfig log;
  StaticConfig statics;     // [static] ("static" is a C++ keyword)
  TlsConfig tls;            // [tls]: the https:// listeners' certificate
  std::string config_file;  // absolute path of the file read, "" when none
  // What the master logs at start-up about the configuration: one line per uWSGI option of
  // an --ini file that has no effect here, with the reason ("uwsgi.ini:3: master: ...").
  std::vector<std::string> notes;
};

struct Key;  // config/keys.h: one row of the key table

// What the command line asks for.
struct CommandLine {
  enum class Action { kRun, kCheck, kVersion, kHelp, kPrintKeys, kPrintToml };
  Action action = Action::kRun;
  std::string config_file;  // -c / --config; "" when none
  std::string ini_file;     // --ini FILE[:SECTION], a uWSGI configuration; "" when none
  // The settings given as flags (--workers 4, --http :80, ...), in command-line order, applied
  // after the file: the key each sets and the value as written, checked when the config is
  // loaded like the file's values.
  struct Setting {
    const Key* key;
    std::string value;
    // Where it was written, for messages ("uwsgi.ini:7: processes = 0"); "" for a flag.
    std::string origin = "";
  };
  std::vector<Setting> settings;
  // uWSGI's options given as flags (--vacuum, --logto FILE): name without "--" and value ("" for
  // a switch), translated when the config is loaded as the same lines of an --ini file are.
  std::vector<std::pair<std::string, std::string>> uwsgi_options;

  // Records |value| for the key set by |flag| (any of its spellings), unchecked: what the parser
  // does, for callers that build a command line themselves. Fails only for an unknown flag.
  Status set(std::string_view flag, std::string value);
  // The values given for [table] key, in order ("" table and key never match).
  std::vector<std::string> values(std::string_view table, std::string_view key) const;
};

// Parses argv. On a usage error returns a one-line message. Accepts every flag of the key
// table (config/keys.cpp) in each spelling documented in aiowsgi-master(8), including
// uWSGI's (--asyncio N, --http-socket, --processes), and --greenlet and --master (accepted,
// no effect); "--opt=value", "--opt value", "-p4". Values are checked as far as they can be
// without the file or the filesystem (integers, ranges, choices, module names).
Result<CommandLine> parse_command_line(int argc, char** argv);

// Builds the configuration: defaults, then the file (if any), then the command-line
// overrides; resolves relative paths (file values: against the file's folder; command-line
// values: against the current directory) and validates every key. Returns false with every
// problem in *errors, each formatted "file:line:col: [table] key = value: reason" (no location
// for problems that come from the command line, "command line: --flag value: reason", or from
// the combination of settings, e.g. no listener or no app). Unknown keys and tables, wrong
// types and out-of-range values are errors. Every problem is reported at once, for the user.
bool load_config(const CommandLine& cli, Config* out, std::vector<std::string>* errors);

// load_config for a config file whose text is already in memory, without command-line
// overrides: |path| names the file in error messages and its folder anchors relative paths.
// For the config fuzz target (config/config_fuzz.cpp) and tests; the server reads files.
bool load_config_from_string(const std::string& text, const std::string& path, Config* out,
                             std::vector<std::string>* errors);

// The text printed by --help: the options, then every key grouped by table with its flags.
std::string usage_text();

// The text printed by --print-keys: every key as "[table] key", one per line.
std::string key_list();

}  // namespace aiowsgi::config
