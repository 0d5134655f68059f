// Fd budget: how many client connections a worker can hold within its open-file limit. Each
// connection (and so each request a core holds suspended) is one descriptor of the worker,
// besides the worker's own. The master warns at start when the configuration asks for more
// (master/capacity.h); the worker stops accepting at this cap, leaving further connections to
// its peers, instead of running into EMFILE. Plain arithmetic and getrlimit; no Python.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>

namespace aiowsgi {

// Descriptors a worker keeps apart from its connections: its event loop, control and log
// pipes, the interpreter's files, and a margin for the files the app opens itself.
inline constexpr uint64_t kWorkerReservedFds = 64;

// The connections one worker can hold open with |nofile| descriptors and |listeners| listen
// sockets.
inline uint64_t connections_within(uint64_t nofile, uint64_t listeners) {
  uint64_t fixed = kWorkerReservedFds + listeners;
  return nofile > fixed ? nofile - fixed : 0;
}

// min(|max_connections|, what this process's RLIMIT_NOFILE allows), at least 1.
inline uint64_t connection_cap(uint64_t max_connections, uint64_t listeners) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return max_connections;
  return std::max<uint64_t>(1,
                            std::min(max_connections, connections_within(lim.rlim_cur, listeners)));
}

}  // namespace aiowsgi
