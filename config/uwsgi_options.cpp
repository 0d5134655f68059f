// The uWSGI option table (see config/uwsgi_options.h). Options that set a key as they are
// come from the key table; this file holds only the verdicts (noted, refused) and the few
// options whose value needs translating.
#include "config/uwsgi_options.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/address.h"
#include "config/keys.h"
#include "config/suggest.h"

namespace aiowsgi::config {
namespace {

constexpr std::string_view kCores =
    "cores do this job: each worker serves up to [server] cores "
    "requests at once, one greenlet each";

constexpr std::string_view kFromMtime =
    "expiry counted from the file's modification time is not supported";
constexpr std::string_view kFromRequest =
    "static-expires, static-expires-uri or static-expires-type, counted from the request";

// Accepted with one note each: they ask for something aiowsgi always does, or never needs.
constexpr UwsgiVerdict kVerdicts[] = {
    {"master", false, "there is always a master process", ""},
    {"greenlet", false, "cores are always greenlets", ""},
    {"enable-threads", false, "threads the app starts always run", ""},
    {"threads", false, kCores, ""},
    {"single-interpreter", false, "each worker has exactly one interpreter", ""},
    {"thunder-lock", false, "workers spread accepts by load without a lock", ""},
    {"vacuum", false, "socket files and the pidfile are always removed at exit", ""},
    {"die-on-term", false, "TERM always stops the server gracefully (HUP reloads)", ""},
    {"need-app", false, "a master whose app cannot be imported always exits with status 3", ""},
    {"strict", false, "unknown options are always errors", ""},
    {"plugins", false, "Python and the asyncio engine are built in", ""},
    {"plugin", false, "Python and the asyncio engine are built in", ""},
    {"offload-threads", false,
     "static files and file wrappers are sent with sendfile by the worker", ""},
    {"auto-procname", false, "process names are not changed", ""},
    {"procname-prefix*", false, "process names are not changed", ""},
    {"memory-report", false, "the stats socket and /metrics report each worker's memory", ""},
    {"py-call-osafterfork", false, "workers reset signals and reseed random after the fork", ""},
    {"ignore-sigpipe", false, "SIGPIPE is always ignored", ""},
    {"ignore-write-errors", false, "a client that goes away is never an error", ""},
    {"disable-write-exception", false, "a client that goes away is never an error", ""},
    {"harakiri-verbose", false, "harakiri always logs the request and its Python stack", ""},
    {"log-4xx", false, "the access log has every request (see [log] access)", ""},
    {"log-5xx", false, "the access log has every request (see [log] access)", ""},
    {"chown-socket", false, "socket files belong to [server] user and group", ""},
    {"static-gzip-all", false, "FILE.gz is always sent to clients that accept gzip", ""},
    {"buffer-size-max", false, "see buffer-size ([limits] max_header_bytes)", ""},
    {"cheaper*", false, "the number of workers is fixed ([server] workers; TTIN/TTOU change it)",
     ""},
    {"lazy", false, "the same as lazy-apps: without [server] preload each worker imports the app",
     ""},

    // Refused: the file asks for behaviour aiowsgi does not have.
    {"daemonize", true, "aiowsgi does not fork into the background",
     "run it under systemd or another supervisor, [log] file for the log"},
    {"daemonize2", true, "aiowsgi does not fork into the background",
     "run it under systemd or another supervisor, [log] file for the log"},
    {"route*", true, "there is no internal routing", "route in the proxy in front"},
    {"response-route*", true, "there is no internal routing", "route in the proxy in front"},
    {"final-route*", true, "there is no internal routing", "route in the proxy in front"},
    {"cron", true, "there is no cron", "a systemd timer or cron"},
    {"unique-cron", true, "there is no cron", "a systemd timer or cron"},
    {"cron2", true, "there is no cron", "a systemd timer or cron"},
    {"attach-daemon*", true, "aiowsgi does not run other programs",
     "a systemd unit of its own for the daemon"},
    {"smart-attach-daemon*", true, "aiowsgi does not run other programs",
     "a systemd unit of its own for the daemon"},
    {"cache*", true, "uWSGI's caches belong to its process model",
     "Redis or memcached, or a per-worker cache in the app"},
    {"spooler*", true, "there is no spooler", "a task queue (Celery, RQ) or aiowsgi.spawn"},
    {"mule*", true, "there are no mules", "a process of its own, or aiowsgi.spawn for async work"},
    {"https*", true, "only https and https-socket (ADDR,CERT,KEY[,CIPHERS[,!CA]]) are translated",
     "[server] listen = [\"https://ADDR:PORT\"] and [tls] certificate, key and ca"},
    {"master-fifo", true, "there is no master FIFO",
     "signals: HUP reloads, TERM stops, TTIN/TTOU add or remove a worker"},
    {"touch-chain-reload", true, "there is no chain reload",
     "HUP, which replaces the workers without failing a request"},
    {"hook-*", true, "there are no hooks", "ExecStartPre= and similar in the systemd unit"},
    {"exec-*", true, "there are no hooks", "ExecStartPre= and similar in the systemd unit"},
    {"logger*", true, "there are no log plugins", "[log] file, or stderr to journald"},
    {"req-logger*", true, "there are no log plugins", "[log] file, or stderr to journald"},
    {"emperor*", true, "there is no emperor", "one systemd unit per app"},
    // static-expires, -uri and -type map onto [static] expires_file, _uri and _type.
    {"static-expires-mtime", true, kFromMtime, kFromRequest},
    {"static-expires-uri-mtime", true, kFromMtime, kFromRequest},
    {"static-expires-type-mtime", true, kFromMtime, kFromRequest},
    {"static-expires-path-info", true, "there is no expiry by the decoded PATH_INFO",
     "static-expires-uri, which matches the path as sent ([static] expires_uri)"},
    {"static-expires-path-info-mtime", true, kFromMtime, kFromRequest},
};

// Options translated here because their value is not the key's value as written.
constexpr std::string_view kTranslated[] = {
    "py-autoreload", "lazy-apps",    "disable-logging", "touch-reload", "wsgi-file",
    "static-map",    "chmod-socket", "static-expires",  "https",        "https-socket"};

// uWSGI's options that take no value (besides the keys of type boolean): on a command line
// the next argument is not theirs.
constexpr std::string_view kSwitches[] = {"master",
                                          "greenlet",
                                          "enable-threads",
                                          "single-interpreter",
                                          "thunder-lock",
                                          "vacuum",
                                          "die-on-term",
                                          "need-app",
                                          "strict",
                                          "auto-procname",
                                          "memory-report",
                                          "py-call-osafterfork",
                                          "ignore-sigpipe",
                                          "ignore-write-errors",
                                          "disable-write-exception",
                                          "harakiri-verbose",
                                          "log-4xx",
                                          "log-5xx",
                                          "static-gzip-all",
                                          "lazy",
                                          "lazy-apps",
                                          "disable-logging"};

const UwsgiVerdict* find_verdict(std::string_view name) {
  for (const UwsgiVerdict& v : kVerdicts) {
    std::string_view pattern = v.name;
    if (pattern.back() == '*') {
      if (name.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1)) return &v;
    } else if (pattern == name) {
      return &v;
    }
  }
  return nullptr;
}

// uWSGI's booleans: true, false, 1, 0 (and yes/no/on/off); an empty value is true, as a bare
// flag on the command line.
std::optional<bool> parse_bool(std::string_view v) {
  if (v.empty() || v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

class Translator {
 public:
  UwsgiTranslation run(const std::vector<IniOption>& options) {
    // uWSGI loads a relative wsgi-file after changing to chdir.
    for (const IniOption& o : options) {
      if (o.name == "chdir") chdir_ = o.value;
    }
    for (const IniOption& o : options) one(o);
    return std::move(out_);
  }

 private:
  // "uwsgi.ini:7"; an option given on the command line has no line.
  std::string where(const IniOption& o) const {
    return o.line == 0 ? o.file : o.file + ":" + std::to_string(o.line);
  }

  void set(const IniOption& o, std::string_view table, std::string_view key, std::string value) {
    std::string as_written = o.line == 0 ? "--" + o.name + (o.value.empty() ? "" : " " + o.value)
                                         : o.name + " = " + o.value;
    out_.settings.push_back({find_key(table, key), std::move(value), where(o) + ": " + as_written});
  }
  void error(const IniOption& o, const std::string& reason) {
    out_.errors.push_back(where(o) + ": " + o.name + ": " + reason);
  }
  void note(const IniOption& o, std::string_view reason) {
    // One note per option, however often the file repeats it.
    if (!noted_.insert(o.name).second) return;
    out_.notes.push_back(where(o) + ": " + o.name + ": no effect here: " + std::string(reason));
  }
  bool boolean(const IniOption& o, bool* b) {
    std::optional<bool> v = parse_bool(o.value);
    if (!v) error(o, "expected true, false, 1 or 0, got '" + o.value + "'");
    if (v) *b = *v;
    return v.has_value();
  }

  void one(const IniOption& o) {
    if (translate(o)) return;
    if (const UwsgiVerdict* v = find_verdict(o.name)) {
      if (v->refused) {
        error(o, std::string(v->reason) + " (" + std::string(v->instead) + ")");
      } else {
        note(o, v->reason);
      }
      return;
    }
    if (const Key* key = find_uwsgi_key(o.name)) {
      std::string value = o.value;
      if (key->type == Type::kBool) {
        bool b = false;
        if (!boolean(o, &b)) return;
        value = b ? "true" : "false";
      }
      // uWSGI reads an address without a ':' as a unix socket path ("/run/app.sock").
      bool address = key->type == Type::kAddress || key->type == Type::kAddressList;
      if (address && !value.empty() && value.find(':') == std::string::npos) {
        value = "unix:" + value;
      }
      set(o, key->table, key->name, value);
      return;
    }
    if (o.variable) return;  // the file's own name for a value, used by %(name)
    std::vector<std::string> known = mapped_uwsgi_options();
    for (const UwsgiVerdict& v : kVerdicts) {
      if (v.name.back() != '*') known.emplace_back(v.name);
    }
    std::vector<std::string_view> views(known.begin(), known.end());
    error(o, "unknown option" + did_you_mean(o.name, views));
  }

  // The options whose value changes on the way; true when |o| was one of them.
  bool translate(const IniOption& o) {
    bool b = false;
    if (o.name == "py-autoreload") {
      // uWSGI's polling interval; here only on or off matters (inotify sees changes at once).
      int64_t n = -1;
      auto [end, ec] = std::from_chars(o.value.data(), o.value.data() + o.value.size(), n);
      if (ec != std::errc() || end != o.value.data() + o.value.size() || n < 0) {
        error(o, "expected an integer >= 0, got '" + o.value + "'");
      } else {
        set(o, "app", "reload", n > 0 ? "true" : "false");
      }
    } else if (o.name == "lazy-apps") {
      if (boolean(o, &b)) set(o, "server", "preload", b ? "false" : "true");
    } else if (o.name == "disable-logging") {
      if (boolean(o, &b)) set(o, "log", "access", b ? "false" : "true");
    } else if (o.name == "touch-reload") {
      // uWSGI reloads when the file's mtime changes: the development reloader watches it.
      set(o, "app", "reload", "true");
      set(o, "app", "reload_extra", o.value);
      note(o,
           "mapped to [app] reload with reload_extra, which also reloads on .py changes; "
           "in production, send HUP instead");
    } else if (o.name == "wsgi-file") {
      bool relative = !o.value.empty() && o.value.front() != '/';
      set(o, "app", "wsgi_file", relative && !chdir_.empty() ? chdir_ + "/" + o.value : o.value);
    } else if (o.name == "chmod-socket") {
      // A bare chmod-socket means 666 in uWSGI.
      set(o, "server", "socket_mode", o.value.empty() ? "666" : o.value);
    } else if (o.name == "static-map") {
      // uWSGI writes "/static=DIR"; the key's prefixes end with '/'.
      std::string value = o.value;
      size_t eq = value.find('=');
      if (eq != std::string::npos && eq > 0 && value[eq - 1] != '/') value.insert(eq, "/");
      set(o, "static", "map", value);
    } else if (o.name == "https" || o.name == "https-socket") {
      https(o);
    } else if (o.name == "static-expires") {
      // uWSGI's is "REGEX SECONDS" on the file's path; --static-expires here is SECONDS alone.
      set(o, "static", "expires_file", o.value);
    } else {
      return false;
    }
    return true;
  }

  // uWSGI's https router and https-socket: ADDR,CERT,KEY[,CIPHERS[,CA]], one listener each.
  // Here every https:// listener serves the one [tls] certificate.
  void https(const IniOption& o) {
    std::vector<std::string> f;
    for (size_t start = 0;;) {
      size_t comma = o.value.find(',', start);
      f.push_back(o.value.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (f.size() < 3 || f.size() > 5 || f[0].empty() || f[1].empty() || f[2].empty()) {
      error(o, "expected ADDR,CERT,KEY[,CIPHERS[,!CA]], got '" + o.value + "'");
      return;
    }
    if (!tls_files_.empty() && tls_files_ != f[1] + "," + f[2]) {
      error(o, "every https listener serves the same certificate and key ([tls]); this one has " +
                   f[1] + " and " + f[2]);
      return;
    }
    tls_files_ = f[1] + "," + f[2];
    if (f.size() == 5 && !f[4].empty() && f[4][0] != '!') {
      // uWSGI asks for a client certificate but lets clients without one in.
      error(o,
            "a client CA without '!' makes client certificates optional, which aiowsgi "
            "does not do: write !" +
                f[4] + " to require them ([tls] ca)");
      return;
    }
    set(o, "server", "listen", std::string(kHttpsScheme) + f[0]);
    set(o, "tls", "certificate", f[1]);
    set(o, "tls", "key", f[2]);
    if (f.size() == 5 && !f[4].empty()) set(o, "tls", "ca", f[4].substr(1));
    if (f.size() >= 4 && !f[3].empty()) {
      note(o, "its cipher list " + f[3] +
                  " is not used: TLS 1.2 and 1.3 with aiowsgi's cipher list "
                  "(aiowsgi.toml(5), [tls])");
    }
  }

  std::string chdir_;
  std::string tls_files_;  // "CERT,KEY" of the first https option
  std::set<std::string> noted_;
  UwsgiTranslation out_;
};

}  // namespace

UwsgiTranslation translate_uwsgi_options(const std::vector<IniOption>& options) {
  return Translator().run(options);
}

std::vector<UwsgiVerdict> uwsgi_verdicts() { return {std::begin(kVerdicts), std::end(kVerdicts)}; }

UwsgiArity uwsgi_option_arity(std::string_view name) {
  const Key* key = find_uwsgi_key(name);
  if (std::find(std::begin(kSwitches), std::end(kSwitches), name) != std::end(kSwitches) ||
      (key != nullptr && key->type == Type::kBool)) {
    return UwsgiArity::kSwitch;
  }
  if (name == "chmod-socket") return UwsgiArity::kOptionalValue;  // alone: 666
  bool translated =
      std::find(std::begin(kTranslated), std::end(kTranslated), name) != std::end(kTranslated);
  if (key != nullptr || translated || find_verdict(name) != nullptr) return UwsgiArity::kValue;
  return UwsgiArity::kUnknown;
}

std::vector<std::string> mapped_uwsgi_options() {
  std::set<std::string> names;
  for (std::string_view n : uwsgi_key_names()) names.emplace(n);
  for (std::string_view n : kTranslated) names.emplace(n);
  // Key-table names that the verdicts override (none today) are not mapped.
  std::vector<std::string> out;
  for (const std::string& n : names) {
    const UwsgiVerdict* v = find_verdict(n);
    if (v == nullptr ||
        std::find(std::begin(kTranslated), std::end(kTranslated), n) != std::end(kTranslated)) {
      out.push_back(n);
    }
  }
  return out;
}

}  // namespace aiowsgi::config
