// The cross-field checks of load_config: what no single key's rule can see, run once the file
// and the command line are merged, each in one function. Master only; no Python.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/address.h"
#include "common/tls_context.h"
#include "config/keys.h"
#include "config/load_steps.h"
#include "config/values.h"
#include "config/virtualenv.h"

namespace aiowsgi::config {

void check_listeners(const std::string& origin, const Origins& origins, const Config& cfg,
                     ErrorList* errors) {
  if (origins.file_failed || origins.listen_error) return;
  if (cfg.server.listen.empty() && cfg.server.uwsgi_listen.empty()) {
    errors->add(origin + ": no listener: set [server] listen or uwsgi_listen, or pass --http ADDR");
  }
}

// Exactly one of wsgi_file and module; the file exists; "pkg.mod:call" splits into module and
// callable.
void check_app(const std::string& origin, const Origins& origins, Config* cfg, ErrorList* errors) {
  if (origins.file_failed) return;
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
}

// Two listeners on one address would make the second bind() fail at start-up.
void check_distinct_addresses(const std::string& origin, const Config& cfg, ErrorList* errors) {
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
  for (const auto& l : cfg.server.listen) add("[server] listen", l);
  for (const auto& l : cfg.server.uwsgi_listen) add("[server] uwsgi_listen", l);
  add("[stats] listen", cfg.stats.listen);
  add("[stats] metrics", cfg.stats.metrics);
}

void check_tls(const std::string& origin, const Config& cfg, ErrorList* errors) {
  auto is_https = [](const std::string& a) {
    return a.compare(0, kHttpsScheme.size(), kHttpsScheme) == 0;
  };
  for (const auto& l : cfg.server.uwsgi_listen) {
    if (is_https(l))
      errors->add(origin + ": [server] uwsgi_listen " + l +
                  ": https:// is for [server] listen only");
  }
  for (const std::string* l : {&cfg.stats.listen, &cfg.stats.metrics}) {
    if (is_https(*l))
      errors->add(origin + ": [stats] " + *l + ": https:// is for [server] listen only");
  }
  bool https = std::any_of(cfg.server.listen.begin(), cfg.server.listen.end(), is_https);
  if (https && cfg.server.proxy_protocol) {
    // The PROXY header would come before the TLS handshake; the worker reads it inside TLS.
    errors->add(origin +
                ": [server] proxy_protocol with an https:// listener is not supported yet");
  }
  const TlsConfig& t = cfg.tls;
  if (t.certificate.empty() && t.key.empty() && t.ca.empty()) {
    if (https) {
      errors->add(origin + ": an https:// listener needs [tls] certificate and key");
    }
    return;
  }
  if (t.certificate.empty() || t.key.empty()) {
    errors->add(origin + ": [tls] needs both certificate and key");
    return;
  }
  // Built exactly as a worker builds it, so a certificate a HUP brings is judged before the
  // new generation forks.
  Result<SslCtxPtr> ctx = make_tls_context({t.certificate, t.key, t.ca});
  if (!ctx.ok()) {
    errors->add(origin + ": " + ctx.status().message());
    return;
  }
  int days = 0;
  std::string summary = tls_certificate_summary(ctx.value().get(), &days);
  if (days < 0) {
    spdlog::warn("[tls] certificate {} has EXPIRED: {}", t.certificate, summary);
  } else if (days < 14) {
    spdlog::warn("[tls] certificate {} expires soon: {}", t.certificate, summary);
  } else {
    spdlog::info("[tls] certificate {}: {}", t.certificate, summary);
  }
  if (!https) {
    spdlog::warn("[tls] is set but no [server] listen address is https://");
    return;
  }
  std::string no_ktls = "[tls] kernel_tls = false";
  if (t.kernel_tls && kernel_tls_available(&no_ktls)) {
    spdlog::info("[tls] static files over TLS: kernel TLS (kTLS) with sendfile");
  } else {
    spdlog::info("[tls] static files over TLS: buffered writes, not kTLS ({})", no_ktls);
  }
}

// The longest prefix wins: "/static/img/" before "/static/".
void order_static_map(Config* cfg) {
  std::stable_sort(cfg->statics.map.begin(), cfg->statics.map.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

// An activated venv is what the user runs Python in; gunicorn and uWSGI started from it would
// import the app there too. The variable is read once per load, so HUP sees the master's own.
void use_virtual_env_variable(const std::filesystem::path& cwd, Config* cfg, ErrorList* errors) {
  if (!cfg->app.virtualenv.empty()) return;
  const char* env = std::getenv("VIRTUAL_ENV");  // NOLINT(concurrency-mt-unsafe): no threads yet
  if (env == nullptr || *env == '\0') return;
  std::string dir = (cwd / env).lexically_normal().string();
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (Status st = check_virtualenv(dir); !st.ok()) {
    errors->add(std::string("environment: VIRTUAL_ENV=") + env + ": " + st.message() +
                " (unset VIRTUAL_ENV, or set [app] virtualenv)");
    return;
  }
  cfg->app.virtualenv = dir;
  cfg->app.virtualenv_from_environment = true;
}

void use_forwarded_allow_ips_variable(const Origins& origins, Config* cfg, ErrorList* errors) {
  const Key* key = find_key("server", "forwarded_allow_ips");
  if (origins.given.count(key) != 0) return;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): no threads yet
  const char* env = std::getenv("FORWARDED_ALLOW_IPS");
  if (env == nullptr) return;
  std::vector<std::string> nets = list_elements(*key, env);
  for (const std::string& net : nets) {
    if (Result<Value> v = accept(*key, Value(net), "/"); !v.ok()) {
      const Status& st = v.status();
      errors->add(std::string("environment: FORWARDED_ALLOW_IPS=") + env + ": " + quote(net) +
                  ": " + st.message() + " (unset FORWARDED_ALLOW_IPS, or set " +
                  "[server] forwarded_allow_ips)");
      return;
    }
  }
  cfg->server.forwarded_allow_ips = std::move(nets);
  cfg->notes.push_back(std::string("environment: FORWARDED_ALLOW_IPS=") + env +
                       ": the trusted proxies ([server] forwarded_allow_ips is unset)");
}

}  // namespace aiowsgi::config
