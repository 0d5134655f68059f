// What the kernel reports about a worker process (/proc/PID/statm) or a listen socket
// (TCP_INFO), read by the master for the stats documents and the reload_on_rss_mb policy.
// The one place these are probed. Master only; no Python.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace aiowsgi::master {

struct ProcessMemory {
  uint64_t rss = 0;  // resident set size, bytes
  uint64_t vsz = 0;  // virtual size, bytes
};

// |pid|'s memory from /proc/PID/statm; zeros when it cannot be read (the process is gone,
// pid <= 0).
ProcessMemory read_memory(pid_t pid);

struct ListenQueue {
  uint64_t queue = 0;      // connections waiting in the accept queue
  uint64_t max_queue = 0;  // its limit (the listen backlog)
};

// A listening socket's accept queue: TCP_INFO for TCP (a LISTEN socket reports its accept
// queue in tcpi_unacked and the backlog in tcpi_sacked); zeros for other sockets.
ListenQueue listen_queue(int fd);

}  // namespace aiowsgi::master
