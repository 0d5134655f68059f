// Preload channel: the master <-> preload process link (SPEC.md "Preload"), one
// SOCK_SEQPACKET socketpair per preload process. The master asks for a worker (kFork, with
// the worker's control-pipe end passed as SCM_RIGHTS); the preload process forks it and
// answers with its pid. Used by the master (libev) and the preload process; no Python.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <type_traits>

#include "common/control.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi {

enum class PreloadType : uint32_t {
  // preload -> master
  kReady = 1,       // the app is imported and frozen: kFork requests are served from now on
  kForked = 2,      // |worker_id| runs as |value| (its pid; re-parented to the master)
  kForkFailed = 3,  // |worker_id| could not be forked; |value| is the errno
  // master -> preload
  kFork = 16,  // fork worker |worker_id| of |num_workers|; carries its control fd
};

// One datagram; both ends are the same binary, so the layout is native and fixed.
struct PreloadMessage {
  PreloadType type = PreloadType::kReady;
  uint32_t worker_id = 0;
  int32_t num_workers = 0;
  int32_t value = 0;  // kForked: pid; kForkFailed: errno
  // kFork: addresses of the worker's StatsBoard slot and of the board, 0 when it has none.
  // The board is mapped (MAP_SHARED) before the master forks the preload process, so these
  // master addresses are valid, unchanged, in the preload process and in its workers.
  uint64_t score = 0;
  uint64_t board = 0;
};
static_assert(std::is_trivially_copyable_v<PreloadMessage>);

// Sends |msg| without blocking and without SIGPIPE; with |pass_fd| >= 0 that descriptor goes
// along (SCM_RIGHTS: the peer gets its own copy, the caller keeps and closes its own).
Status send_preload(int fd, const PreloadMessage& msg, int pass_fd = -1);

// Reads one message without blocking. A descriptor that came with it goes to *passed (closed
// if |passed| is null). Datagrams of the wrong size are skipped.
RecvResult recv_preload(int fd, PreloadMessage* msg, UniqueFd* passed);

// Waits up to |timeout_ms| (-1: forever) for |fd| to become readable or hang up; false on
// timeout. EINTR restarts the wait.
bool wait_readable(int fd, int timeout_ms);

const char* preload_type_name(PreloadType type);

}  // namespace aiowsgi
