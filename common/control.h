// Control pipe: the master <-> worker message channel, one SOCK_SEQPACKET socketpair per
// worker. Each message is one fixed-layout ControlMessage datagram, so no framing is needed
// and a message is never split. Used by the master (libev) and the worker (its asyncio loop);
// no Python, no GIL needed.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/result.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi {

enum class ControlType : uint32_t {
  // worker -> master
  kReady = 1,         // the app is imported and the worker watches the listen sockets
  kHeartbeat = 2,     // every tick of the worker's loop (0.25 s): counters below are current
  kAppLoadError = 3,  // the app could not be imported; the worker exits kExitAppLoadError next
  kBootError = 4,     // the interpreter or loop failed; the worker exits kExitBootError next
  // max_requests: the worker has handed its last request to the app (|requests| says how
  // many), stopped accepting, and exits once the connections it holds are done. The master
  // starts its replacement at once.
  kRetiring = 5,
  // [app] reload: the files of the modules the worker imported. Unlike the others this
  // datagram carries a payload after the message (common/watch_report.h), so only
  // recv_control_or_files() reads it; recv_control() skips it.
  kWatchFiles = 6,
  // master -> worker
  kDrain = 16,       // graceful stop: stop accepting, finish in-flight requests, exit 0
                     // (|drain_reason| says whether the service goes on without the worker)
  kStop = 17,        // immediate stop: exit now
  kReopenLogs = 18,  // SIGUSR1 reached the master: call log::reopen()
};

// Why a worker drains (kDrain). Its websocket clients hear it in their close frame: a restart
// says "reconnect now" (1012 Service Restart), a shutdown says "the server is gone" (1001 Going
// Away). Plain requests are drained alike either way.
enum class DrainReason : uint32_t {
  kShutdown = 0,  // the whole server stops (TERM, INT and QUIT to the master, the master gone)
  kRestart = 1,   // the service goes on without this worker: HUP, a binary upgrade handing
                  // over, reload_on_rss_mb or max_requests replacing it, fewer workers (TTOU)
};

// One datagram. Both ends are the same binary, so the layout is native and fixed; a
// datagram of another size is rejected. Fields a type does not use are zero. The counters
// the stats report (exceptions, bytes sent, ...) travel through the StatsBoard instead.
struct ControlMessage {
  ControlType type = ControlType::kHeartbeat;
  // Sender's or addressee's worker id (1-based). Each worker has its own pipe, so this only
  // confirms it: the master ignores a message whose id is not the pipe's worker's.
  uint32_t worker_id = 0;
  uint64_t requests = 0;    // kHeartbeat, kRetiring: requests handed to the app so far
  uint64_t busy_cores = 0;  // kHeartbeat: cores running a request right now
  // kHeartbeat: start time (CLOCK_MONOTONIC, ms) of the oldest request still running, 0 when
  // idle: lets the master enforce harakiri without another message type.
  uint64_t oldest_request_ms = 0;
  DrainReason drain_reason = DrainReason::kShutdown;  // kDrain
  uint32_t reserved = 0;                              // keeps the layout free of padding
};
static_assert(std::is_trivially_copyable_v<ControlMessage>);
static_assert(sizeof(ControlMessage) == 40);

struct ControlPair {
  UniqueFd master_end;  // non-blocking
  UniqueFd worker_end;  // left blocking (the worker decides; the functions below never block)
};

// Creates a connected SOCK_SEQPACKET | SOCK_CLOEXEC pair, or an Io status.
Result<ControlPair> make_control_pair();

// Sends |msg| without blocking and without SIGPIPE (MSG_DONTWAIT | MSG_NOSIGNAL).
// Io status on EAGAIN (peer not reading), EPIPE/ECONNRESET (peer gone) or other errors.
Status send_message(int fd, const ControlMessage& msg);

// Sends a message of |type| with no counters (a command, or a worker's state report) to or
// from worker |worker_id|, as send_message does.
Status send_control(int fd, ControlType type, int worker_id);

// Asks worker |worker_id| to drain for |reason|, as send_message does.
Status send_drain(int fd, int worker_id, DrainReason reason);

enum class RecvResult {
  kMessage,  // *msg holds a message
  kAgain,    // nothing to read now
  kClosed,   // the peer closed its end (or died): stop watching the fd
  kError,    // recv failed (errno is set); treat like kClosed
};

// Reads one message without blocking; datagrams of the wrong size are skipped.
RecvResult recv_control(int fd, ControlMessage* msg);

// Short name for logs: "ready", "heartbeat", ... ("unknown" for others).
const char* control_type_name(ControlType type);
// "shutdown" or "restart", for logs.
const char* drain_reason_name(DrainReason reason);

}  // namespace aiowsgi
