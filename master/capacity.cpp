#include "master/capacity.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "common/status.h"
#include "config/config.h"

namespace aiowsgi::master {

namespace {

int64_t read_somaxconn() {
  std::ifstream f("/proc/sys/net/core/somaxconn");
  int64_t v = -1;
  if (!(f >> v)) return -1;
  return v;
}

std::string n(uint64_t v) { return std::to_string(v); }

}  // namespace

uint64_t nofile_needed(const CapacityInput& in) {
  // A connection is held per request in a core and per idle keep-alive connection: the larger
  // of the two figures is what a worker may have open.
  uint64_t conns = static_cast<uint64_t>(std::max<int64_t>(in.max_connections, 0));
  return conns + kWorkerReservedFds + in.listeners;
}

std::vector<std::string> capacity_warnings(const CapacityInput& in) {
  std::vector<std::string> out;
  const uint64_t fd_cap = connections_within(in.nofile, in.listeners);
  const uint64_t max_conns = static_cast<uint64_t>(std::max<int64_t>(in.max_connections, 0));
  const uint64_t cores = static_cast<uint64_t>(std::max<int64_t>(in.cores, 0));
  if (max_conns > fd_cap) {
    out.push_back("[limits] max_connections = " + n(max_conns) +
                  " exceeds what the open-file limit allows a worker (RLIMIT_NOFILE " +
                  n(in.nofile) + ", less " + n(in.nofile - std::min(in.nofile, fd_cap)) +
                  " descriptors of its own): each worker holds at most " + n(fd_cap) +
                  " connections; raise `ulimit -n` (LimitNOFILE= under systemd)");
  }
  // Every request in a core holds its connection: more cores than descriptors never all run.
  if (cores > fd_cap) {
    out.push_back("[server] cores = " + n(cores) + ": at most " + n(fd_cap) +
                  " requests per worker can be in progress at once, one connection each, "
                  "within the open-file limit " +
                  n(in.nofile));
  }
  if (in.somaxconn > 0 && in.backlog > in.somaxconn) {
    out.push_back("[server] backlog = " + std::to_string(in.backlog) +
                  " exceeds net.core.somaxconn = " + std::to_string(in.somaxconn) +
                  ": the kernel caps each listen queue at " + std::to_string(in.somaxconn) +
                  " (sysctl -w net.core.somaxconn=" + std::to_string(in.backlog) + " to raise it)");
  }
  return out;
}

void check_capacity(const config::Config& cfg) {
  CapacityInput in;
  in.cores = cfg.server.cores;
  in.max_connections = cfg.limits.max_connections;
  in.backlog = cfg.server.backlog;
  in.listeners = cfg.server.listen.size() + cfg.server.uwsgi_listen.size();
  in.somaxconn = read_somaxconn();
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("cannot read the open-file limit: {}", errno_string(errno));
    return;
  }
  const uint64_t need = nofile_needed(in);
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    // The soft limit is the process's own to raise up to the hard one (as Go's runtime does
    // at start): the default 1024 would otherwise cap a worker far below its configuration.
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? need : std::min<rlim_t>(need, lim.rlim_max);
    if (raised.rlim_cur > lim.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      spdlog::info(
          "open-file limit raised from {} to {} (of at most {}) for [limits] "
          "max_connections = {}",
          lim.rlim_cur, raised.rlim_cur, lim.rlim_max, in.max_connections);
      lim = raised;
    }
  }
  in.nofile = lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : lim.rlim_cur;
  for (const std::string& w : capacity_warnings(in)) spdlog::warn("{}", w);
}

}  // namespace aiowsgi::master
