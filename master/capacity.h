// Capacity: what the kernel limits let the configured concurrency become. Each connection a
// worker holds (and so each request a core holds suspended) takes one file descriptor of the
// worker, whose RLIMIT_NOFILE it inherits from the master; each listen queue is capped by
// net.core.somaxconn whatever [server] backlog asks. At start the master raises its soft
// open-file limit towards what the configuration needs (never past the hard limit) and says
// in its log where a configured figure cannot be reached, naming the figure that will cap it.
// Master only; no Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd_budget.h"

namespace aiowsgi::config {
struct Config;
}

namespace aiowsgi::master {

struct CapacityInput {
  int64_t cores = 0;
  int64_t max_connections = 0;
  int64_t backlog = 0;
  uint64_t listeners = 0;  // listen sockets, each an fd in every worker
  uint64_t nofile = 0;     // RLIMIT_NOFILE (soft) the workers will inherit
  int64_t somaxconn = -1;  // /proc/sys/net/core/somaxconn, -1 unknown
};

// The soft RLIMIT_NOFILE the configuration needs: every connection a worker may hold, plus
// its reserved descriptors.
uint64_t nofile_needed(const CapacityInput& in);

// One warning per configured figure the limits cut, each naming the figure that caps it;
// empty when everything fits.
std::vector<std::string> capacity_warnings(const CapacityInput& in);

// At start: raises the soft open-file limit to what |cfg| needs (at most the hard limit),
// then logs capacity_warnings() for the limit in force and the system's somaxconn.
void check_capacity(const config::Config& cfg);

}  // namespace aiowsgi::master
