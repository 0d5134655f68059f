// libFuzzer target: the server.toml loader (toml++ parse + every key's checks) over untrusted
// text, through load_config_from_string. Built only by the fuzz configuration
// (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run.
// Invariants checked beyond "no crash":
//   - the verdict is deterministic (a second load gives the same config or the same errors);
//   - failure comes with at least one error, each naming the file, and leaves *out untouched;
//   - success yields values inside the documented ranges, absolute paths, one app source.
// Host names in listen addresses would be resolved through DNS; this binary replaces
// getaddrinfo so that a fuzz run never sends a packet anywhere (only numeric hosts resolve).

#include <dlfcn.h>
#include <netdb.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
  using Fn = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "getaddrinfo"));
  struct addrinfo h {};
  if (hints != nullptr) h = *hints;
  h.ai_flags |= AI_NUMERICHOST;
  return real(node, service, &h, res);
}

namespace {

using aiowsgi::config::Config;

constexpr char kPath[] = "/nonexistent-aiowsgi-fuzz/server.toml";

// What is observable about a loaded config, for comparing two loads.
std::string summary(const Config& c) {
  std::string s;
  for (const auto& l : c.server.listen) s += "L" + l + "\n";
  for (const auto& l : c.server.uwsgi_listen) s += "U" + l + "\n";
  s += std::to_string(c.server.workers) + " " + std::to_string(c.server.cores) + " " +
       std::to_string(c.server.backlog) + " " + c.server.pidfile + " " + c.app.wsgi_file + " " +
       c.app.module + ":" + c.app.callable + " " + c.app.loop + " " +
       std::to_string(c.limits.header_timeout) + " " + std::to_string(c.limits.max_header_bytes) +
       " " + c.log.level + " " + c.log.format + " " + c.stats.listen + " " + c.stats.metrics;
  for (const auto& [k, v] : c.app.env) s += "E" + k + "=" + v + "\n";
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // configs are small; longer inputs only slow the search
  const std::string text(reinterpret_cast<const char*>(data), size);

  Config a;
  a.server.cores = -7;  // a sentinel: a failed load must not touch *out
  std::vector<std::string> errors_a;
  const bool ok_a = aiowsgi::config::load_config_from_string(text, kPath, &a, &errors_a);
  Config b;
  std::vector<std::string> errors_b;
  const bool ok_b = aiowsgi::config::load_config_from_string(text, kPath, &b, &errors_b);
  FUZZ_CHECK(ok_a == ok_b);
  FUZZ_CHECK(errors_a == errors_b);

  if (!ok_a) {
    FUZZ_CHECK(!errors_a.empty());
    FUZZ_CHECK(a.server.cores == -7);
    for (const std::string& e : errors_a) {
      FUZZ_CHECK(e.rfind(kPath, 0) == 0);  // every error names the file
      FUZZ_CHECK(e.find('\n') == std::string::npos || e.find("syntax error") != std::string::npos);
    }
    return 0;
  }
  FUZZ_CHECK(errors_a.empty());
  FUZZ_CHECK(summary(a) == summary(b));
  FUZZ_CHECK(a.server.workers >= 1 && a.server.workers <= 1024);
  FUZZ_CHECK(a.server.cores >= 1);
  FUZZ_CHECK(a.server.backlog >= 1);
  FUZZ_CHECK(!a.server.listen.empty() || !a.server.uwsgi_listen.empty());
  FUZZ_CHECK(a.app.wsgi_file.empty() != a.app.module.empty());
  FUZZ_CHECK(a.app.wsgi_file.empty() || a.app.wsgi_file[0] == '/');
  FUZZ_CHECK(a.server.pidfile.empty() || a.server.pidfile[0] == '/');
  FUZZ_CHECK(a.log.file.empty() || a.log.file[0] == '/');
  FUZZ_CHECK(a.app.loop == "asyncio" || a.app.loop == "uvloop");
  FUZZ_CHECK(a.limits.header_timeout > 0 && a.limits.keepalive_timeout >= 0);
  FUZZ_CHECK(a.limits.max_header_bytes > 0 && a.limits.max_body_bytes >= 0);
  FUZZ_CHECK(a.limits.harakiri >= 0 && a.limits.max_requests >= 0);
  FUZZ_CHECK(a.log.format == "text" || a.log.format == "json");
  FUZZ_CHECK(a.config_file == kPath);
  return 0;
}
