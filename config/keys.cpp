#include "config/keys.h"

#include <string>

#include "config/values.h"

namespace aiowsgi::config {
namespace {

// The Config field of a row: a captureless lambda, usable in the constexpr table.
#define FIELD(member) [](Config& c) -> Field { return &c.member; }

constexpr std::string_view kTables[] = {"server", "app", "limits", "stats", "log", "static", "tls"};
constexpr std::string_view kLoops[] = {"asyncio", "uvloop"};
constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
constexpr std::string_view kFormats[] = {"text", "json"};

// clang-format off
constexpr Key kKeys[] = {
    // [server]
    {.table = "server", .name = "listen", .type = Type::kAddressList, .field = FIELD(server.listen),
     .doc = "HTTP listeners: HOST:PORT, :PORT, [IPv6]:PORT or unix:/path",
     .flag = {.name = "--http", .uwsgi = "--http-socket"}, .uwsgi_opt = "http-socket",
     .uwsgi_more = "http", .role = Role::kListener},
    {.table = "server", .name = "uwsgi_listen", .type = Type::kAddressList,
     .field = FIELD(server.uwsgi_listen), .doc = "uwsgi-protocol listeners (nginx uwsgi_pass)",
     .flag = {.name = "--uwsgi-socket", .uwsgi = "--socket"}, .uwsgi_opt = "socket",
     .role = Role::kListener},
    {.table = "server", .name = "workers", .type = Type::kInt, .field = FIELD(server.workers),
     .doc = "worker processes", .min = kMinWorkers, .max = kMaxWorkers,
     .flag = {.name = "--workers", .uwsgi = "--processes", .short_name = 'p'},
     .uwsgi_opt = "processes", .default_note = "number of CPUs"},
    {.table = "server", .name = "cores", .type = Type::kInt, .field = FIELD(server.cores),
     .doc = "requests in flight per worker, one greenlet each", .min = 1, .max = kMaxCores,
     .flag = {.name = "--cores", .uwsgi = "--asyncio"}, .uwsgi_opt = "asyncio",
     .uwsgi_more = "async"},
    {.table = "server", .name = "backlog", .type = Type::kInt, .field = FIELD(server.backlog),
     .doc = "listen() queue length", .min = 1, .max = 65535, .uwsgi_opt = "listen"},
    {.table = "server", .name = "reuse_port", .type = Type::kBool,
     .field = FIELD(server.reuse_port), .doc = "SO_REUSEPORT on TCP listeners",
     .uwsgi_opt = "reuse-port"},
    {.table = "server", .name = "socket_mode", .type = Type::kFileMode,
     .field = FIELD(server.socket_mode),
     .doc = "permission bits of unix socket files, octal (\"660\"); 0: as the umask gives",
     .uwsgi_more = "chmod-socket"},
    {.table = "server", .name = "pidfile", .type = Type::kPath, .field = FIELD(server.pidfile),
     .doc = "write the master's pid to this file", .flag = {.name = "--pidfile"},
     .uwsgi_opt = "pidfile", .metavar = "FILE"},
    {.table = "server", .name = "user", .type = Type::kUser, .field = FIELD(server.user),
     .doc = "user the workers run as (name or uid)", .uwsgi_opt = "uid"},
    {.table = "server", .name = "group", .type = Type::kGroup, .field = FIELD(server.group),
     .doc = "group the workers run as (name or gid)", .uwsgi_opt = "gid"},
    {.table = "server", .name = "graceful_timeout", .type = Type::kSeconds,
     .field = FIELD(server.graceful_timeout),
     .doc = "seconds a stopping worker may finish its requests"},
    {.table = "server", .name = "preload", .type = Type::kBool, .field = FIELD(server.preload),
     .doc = "import the app once per generation, before the workers fork (copy-on-write)",
     .flag = {.name = "--preload"}},
    {.table = "server", .name = "forwarded_allow_ips", .type = Type::kNetworkList,
     .field = FIELD(server.forwarded_allow_ips),
     .doc = "proxies whose X-Forwarded-*/Forwarded/PROXY headers are believed (IP, CIDR, *)",
     .flag = {.name = "--forwarded-allow-ips"}, .metavar = "IP|CIDR|*",
     .default_note = "[\"127.0.0.1\", \"::1\"]"},
    {.table = "server", .name = "proxy_protocol", .type = Type::kBool,
     .field = FIELD(server.proxy_protocol),
     .doc = "listeners expect a PROXY protocol v1/v2 header first (HAProxy, AWS NLB)",
     .flag = {.name = "--proxy-protocol"}},
    {.table = "server", .name = "add_header", .type = Type::kHeaderList,
     .field = FIELD(server.add_header),
     .doc = "a field added to every response (\"Name: value\"); not to a websocket's 101",
     .flag = {.name = "--add-header", .adds = true}, .uwsgi_more = "add-header",
     .metavar = "'NAME: VALUE'"},
    {.table = "server", .name = "temp_dir", .type = Type::kDirectory,
     .field = FIELD(server.temp_dir),
     .doc = "folder for request bodies past buffer_body_bytes (unnamed files)",
     .metavar = "DIR", .default_note = "$TMPDIR, else /tmp"},

    // [app]
    {.table = "app", .name = "wsgi_file", .type = Type::kPath, .field = FIELD(app.wsgi_file),
     .doc = "load the WSGI app from this Python file", .flag = {.name = "--wsgi-file"},
     .uwsgi_opt = "wsgi-file", .metavar = "FILE", .role = Role::kAppFile},
    {.table = "app", .name = "module", .type = Type::kModule, .field = FIELD(app.module),
     .doc = "load the WSGI app from a module (callable default: application)",
     .flag = {.name = "--module", .uwsgi = "--wsgi"}, .uwsgi_opt = "module",
     .role = Role::kAppModule},
    {.table = "app", .name = "callable", .type = Type::kPythonName, .field = FIELD(app.callable),
     .doc = "the WSGI callable's name in the file or module", .uwsgi_opt = "callable"},
    {.table = "app", .name = "chdir", .type = Type::kDirectory, .field = FIELD(app.chdir),
     .doc = "workers change to this folder before loading the app", .uwsgi_opt = "chdir"},
    {.table = "app", .name = "virtualenv", .type = Type::kVirtualenv,
     .field = FIELD(app.virtualenv),
     .doc = "run the app in this virtualenv (unset: $VIRTUAL_ENV when set)",
     .flag = {.name = "--virtualenv", .uwsgi = "--venv", .uwsgi_also = "--home", .short_name = 'H'},
     .uwsgi_opt = "virtualenv", .uwsgi_more = "home"},
    {.table = "app", .name = "python_path", .type = Type::kPathList,
     .field = FIELD(app.python_path), .doc = "folders put first on sys.path",
     .uwsgi_opt = "pythonpath"},
    {.table = "app", .name = "env", .type = Type::kEnv, .field = FIELD(app.env),
     .doc = "environment variables set in the workers", .uwsgi_opt = "env"},
    {.table = "app", .name = "loop", .type = Type::kChoice, .field = FIELD(app.loop),
     .doc = "the workers' event loop", .choices = kLoops, .flag = {.name = "--loop"},
     .uwsgi_opt = "loop"},
    {.table = "app", .name = "uwsgi_compat", .type = Type::kBool, .field = FIELD(app.uwsgi_compat),
     .doc = "provide the uwsgi module and uWSGI environ keys"},
    // Flags: --reload and --py-autoreload N, command-line options (config/command_line.cpp),
    // since a table flag always takes a value and uWSGI's takes a number.
    {.table = "app", .name = "reload", .type = Type::kBool, .field = FIELD(app.reload),
     .doc = "development: reload when an imported .py file changes"},
    {.table = "app", .name = "reload_extra", .type = Type::kPathList,
     .field = FIELD(app.reload_extra),
     .doc = "more files, folders or globs that trigger [app] reload"},
    {.table = "app", .name = "mount", .type = Type::kUrlPrefix, .field = FIELD(app.mount),
     .doc = "serve the app under this URL prefix (SCRIPT_NAME); other paths get 404",
     .flag = {.name = "--mount"}, .metavar = "/PREFIX"},

    // [limits]
    {.table = "limits", .name = "harakiri", .type = Type::kSeconds, .field = FIELD(limits.harakiri),
     .doc = "recycle a worker whose request runs longer; 0: off", .uwsgi_opt = "harakiri"},
    {.table = "limits", .name = "max_requests", .type = Type::kInt,
     .field = FIELD(limits.max_requests), .doc = "recycle a worker after this many requests; 0: off",
     .min = 0, .max = INT64_MAX, .uwsgi_opt = "max-requests"},
    {.table = "limits", .name = "reload_on_rss_mb", .type = Type::kInt,
     .field = FIELD(limits.reload_on_rss_mb),
     .doc = "recycle a worker whose resident memory passes this (MiB); 0: off", .min = 0,
     .max = INT64_MAX, .uwsgi_opt = "reload-on-rss"},
    {.table = "limits", .name = "keepalive_timeout", .type = Type::kPositiveSeconds,
     .field = FIELD(limits.keepalive_timeout), .doc = "seconds an idle keep-alive connection stays"},
    {.table = "limits", .name = "header_timeout", .type = Type::kPositiveSeconds,
     .field = FIELD(limits.header_timeout), .doc = "seconds a client has to send a request head",
     .uwsgi_more = "socket-timeout http-timeout"},
    {.table = "limits", .name = "max_header_bytes", .type = Type::kInt,
     .field = FIELD(limits.max_header_bytes), .doc = "largest request head accepted",
     .min = kMinHeaderBytes, .max = kMaxHeaderBytes, .uwsgi_more = "buffer-size"},
    // Apache's LimitRequestFields and gunicorn's limit_request_fields stop at 32767/32768 too.
    {.table = "limits", .name = "max_header_fields", .type = Type::kInt,
     .field = FIELD(limits.max_header_fields), .doc = "most request header fields accepted",
     .min = 1, .max = 32768},
    {.table = "limits", .name = "body_timeout", .type = Type::kSeconds,
     .field = FIELD(limits.body_timeout),
     .doc = "seconds a request body may keep the server waiting, plus 1 s per KiB; 0: off"},
    {.table = "limits", .name = "max_body_bytes", .type = Type::kInt,
     .field = FIELD(limits.max_body_bytes), .doc = "largest request body accepted; 0: no limit",
     .min = 0, .max = INT64_MAX},
    {.table = "limits", .name = "buffer_body_bytes", .type = Type::kInt,
     .field = FIELD(limits.buffer_body_bytes),
     .doc = "read bodies whole before the app runs, this much in memory; 0: off",
     .min = 0, .max = INT64_MAX, .uwsgi_opt = "post-buffering"},
    {.table = "limits", .name = "max_connections", .type = Type::kInt,
     .field = FIELD(limits.max_connections),
     .doc = "open client connections per worker; at it, accepts pause", .min = 1, .max = 1000000},

    // [stats]
    {.table = "stats", .name = "listen", .type = Type::kAddress, .field = FIELD(stats.listen),
     .doc = "serve JSON statistics on this address", .flag = {.name = "--stats"},
     .uwsgi_opt = "stats"},
    {.table = "stats", .name = "metrics", .type = Type::kTcpAddress, .field = FIELD(stats.metrics),
     .doc = "serve Prometheus /metrics on this HOST:PORT"},

    // [log]
    {.table = "log", .name = "level", .type = Type::kChoice, .field = FIELD(log.level),
     .doc = "the least severe message logged", .choices = kLevels},
    {.table = "log", .name = "file", .type = Type::kPath, .field = FIELD(log.file),
     .doc = "log to this file instead of stderr", .uwsgi_more = "logto", .metavar = "FILE"},
    {.table = "log", .name = "access", .type = Type::kBool, .field = FIELD(log.access),
     .doc = "log one line per request"},
    {.table = "log", .name = "format", .type = Type::kChoice, .field = FIELD(log.format),
     .doc = "log line format", .choices = kFormats},

    // [static]
    {.table = "static", .name = "map", .type = Type::kStaticMap, .field = FIELD(statics.map),
     .doc = "serve the files of DIR under the URL PREFIX (\"/static/\")",
     .flag = {.name = "--static-map", .adds = true}, .uwsgi_opt = "static-map"},
    {.table = "static", .name = "expires", .type = Type::kInt, .field = FIELD(statics.expires),
     .doc = "Cache-Control max-age for static files, seconds; 0: none", .min = 0,
     .max = kMaxExpires, .flag = {.name = "--static-expires"}},
    // uWSGI's static-expires takes "REGEX SECONDS" where --static-expires takes SECONDS: it
    // is translated in config/uwsgi_options.cpp, and this key has no flag of its own.
    {.table = "static", .name = "expires_file", .type = Type::kRegexExpiry,
     .field = FIELD(statics.expires_file),
     .doc = "\"REGEX SECONDS\": Expires and max-age for files whose path the regex matches"},
    {.table = "static", .name = "expires_uri", .type = Type::kRegexExpiry,
     .field = FIELD(statics.expires_uri),
     .doc = "\"REGEX SECONDS\": Expires and max-age for request URIs the regex matches",
     .flag = {.name = "--static-expires-uri", .adds = true}},
    {.table = "static", .name = "expires_type", .type = Type::kTypeExpiry,
     .field = FIELD(statics.expires_type),
     .doc = "\"TYPE SECONDS\": Expires and max-age for files of this Content-Type",
     .flag = {.name = "--static-expires-type", .adds = true}},

    // [tls]: for the https:// addresses of [server] listen (common/tls_context.h)
    {.table = "tls", .name = "certificate", .type = Type::kPath, .field = FIELD(tls.certificate),
     .doc = "PEM certificate, then its chain, served on https:// listeners", .metavar = "FILE"},
    {.table = "tls", .name = "key", .type = Type::kPath, .field = FIELD(tls.key),
     .doc = "PEM private key of the certificate", .metavar = "FILE"},
    {.table = "tls", .name = "ca", .type = Type::kPath, .field = FIELD(tls.ca),
     .doc = "PEM CA bundle: when set, clients must present a certificate it signed",
     .metavar = "FILE"},
    {.table = "tls", .name = "kernel_tls", .type = Type::kBool, .field = FIELD(tls.kernel_tls),
     .doc = "let the kernel encrypt (kTLS, sendfile for static files) where it can"},
    {.table = "tls", .name = "ticket_key_rotation", .type = Type::kInt,
     .field = FIELD(tls.ticket_key_rotation),
     .doc = "seconds between new session-ticket keys, shared by all workers", .min = 1,
     .max = 604800},
};
// clang-format on
#undef FIELD

// uWSGI options every aiowsgi server has, shown after the [server] keys' (as uWSGI's --master
// and --greenlet, which aiowsgi accepts and ignores).
constexpr std::string_view kAlwaysOn[] = {"master", "greenlet"};

}  // namespace

std::span<const Key> keys() { return kKeys; }
std::span<const std::string_view> tables() { return kTables; }

const Key* find_key(std::string_view table, std::string_view name) {
  for (const Key& k : kKeys) {
    if (k.table == table && k.name == name) return &k;
  }
  return nullptr;
}

const Key* find_flag(std::string_view flag) {
  if (flag.empty()) return nullptr;
  for (const Key& k : kKeys) {
    const Flag& f = k.flag;
    if (f.name.empty()) continue;
    if (f.name == flag || f.uwsgi == flag || (!f.uwsgi_also.empty() && f.uwsgi_also == flag)) {
      return &k;
    }
    if (f.short_name != 0 && flag.size() == 2 && flag[0] == '-' && flag[1] == f.short_name) {
      return &k;
    }
  }
  return nullptr;
}

namespace {

// Calls |fn| with every uWSGI name of |key|; stops at the first true.
template <typename Fn>
bool any_uwsgi_name(const Key& key, Fn fn) {
  auto strip = [](std::string_view flag) { return flag.substr(flag.find_first_not_of('-')); };
  if (!key.flag.uwsgi.empty() && fn(strip(key.flag.uwsgi))) return true;
  if (!key.flag.name.empty() && fn(strip(key.flag.name))) return true;
  if (!key.uwsgi_opt.empty() && fn(key.uwsgi_opt)) return true;
  std::string_view more = key.uwsgi_more;
  while (!more.empty()) {
    size_t space = more.find(' ');
    if (fn(more.substr(0, space))) return true;
    more = space == std::string_view::npos ? std::string_view() : more.substr(space + 1);
  }
  return false;
}

}  // namespace

const Key* find_uwsgi_key(std::string_view option) {
  for (const Key& k : kKeys) {
    if (any_uwsgi_name(k, [&](std::string_view n) { return n == option; })) return &k;
  }
  return nullptr;
}

std::vector<std::string_view> uwsgi_key_names() {
  std::vector<std::string_view> names;
  for (const Key& k : kKeys) {
    any_uwsgi_name(k, [&](std::string_view n) {
      names.push_back(n);
      return false;
    });
  }
  return names;
}

std::string default_text(const Key& key) {
  if (!key.default_note.empty()) return std::string(key.default_note);
  Config defaults;
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, bool>) {
          return *p ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) {
          return std::to_string(*p);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_double(*p);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return p->empty() ? "" : quote(*p);
        } else {
          return "";
        }
      },
      key.field(defaults));
}

std::string metavar(const Key& key) {
  if (!key.metavar.empty()) return std::string(key.metavar);
  switch (key.type) {
    case Type::kInt:
      return "N";
    case Type::kFileMode:
      return "MODE";
    case Type::kSeconds:
    case Type::kPositiveSeconds:
      return "SECONDS";
    case Type::kBool:
      return "true|false";
    case Type::kChoice: {
      std::string all;
      for (std::string_view c : key.choices) all.append(all.empty() ? "" : "|").append(c);
      return all;
    }
    case Type::kPythonName:
      return "NAME";
    case Type::kModule:
      return "MOD[:CALL]";
    case Type::kPath:
      return "PATH";
    case Type::kDirectory:
    case Type::kVirtualenv:
      return "DIR";
    case Type::kUser:
      return "USER";
    case Type::kGroup:
      return "GROUP";
    case Type::kAddress:
    case Type::kTcpAddress:
    case Type::kAddressList:
      return "ADDR";
    case Type::kPathList:
      return "DIR";
    case Type::kEnv:
      return "NAME=VALUE";
    case Type::kStaticMap:
      return "PREFIX=DIR";
    case Type::kNetworkList:
      return "IP|CIDR|*";
    case Type::kUrlPrefix:
      return "/PREFIX";
    case Type::kHeaderList:
      return "'NAME: VALUE'";
    case Type::kRegexExpiry:
      return "'REGEX SECONDS'";
    case Type::kTypeExpiry:
      return "'TYPE SECONDS'";
  }
  return "VALUE";
}

void for_each_uwsgi_option(const Config& config,
                           const std::function<void(const UwsgiOption&)>& fn) {
  // The fields are only read; Key::field takes a mutable Config to serve the loader too.
  Config& c = const_cast<Config&>(config);
  auto report = [&](const Key& key) {
    UwsgiOption o;
    o.name = key.uwsgi_opt;
    bool set = std::visit(
        [&](auto* p) -> bool {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, bool>) {
            o.kind = UwsgiOption::Kind::kTrue;
            return *p;
          } else if constexpr (std::is_arithmetic_v<T>) {
            o.kind = UwsgiOption::Kind::kNumber;
            o.number = static_cast<double>(*p);
            return *p != 0;
          } else if constexpr (std::is_same_v<T, std::string>) {
            if (!p->empty()) o.texts.push_back(*p);
            return !p->empty();
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            o.texts = *p;
            return !p->empty();
          } else {
            for (const auto& [name, value] : *p) o.texts.push_back(name + "=" + value);
            return !p->empty();
          }
        },
        key.field(c));
    if (set) fn(o);
  };
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    const Key& key = kKeys[i];
    if (!key.uwsgi_opt.empty()) report(key);
    bool last_of_server =
        key.table == "server" && (i + 1 == std::size(kKeys) || kKeys[i + 1].table != "server");
    if (last_of_server) {
      for (std::string_view name : kAlwaysOn) {
        UwsgiOption o;
        o.name = name;
        o.kind = UwsgiOption::Kind::kTrue;
        fn(o);
      }
    }
  }
}

}  // namespace aiowsgi::config
