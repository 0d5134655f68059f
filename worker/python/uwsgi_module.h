// The `uwsgi` compatibility module a worker gives its app unless [app] uwsgi_compat = false:
// the part of uWSGI's Python API that real asyncio-engine code uses (websocket_*, suspend,
// wait_fd_read/write, ready_fd, async_sleep, connection_fd, worker_id, numproc, opt), working
// under this engine (SPEC.md "Python side"). Workers only; everything here needs the GIL.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace aiowsgi::worker {

// Makes `import uwsgi` give the module; call before Py_Initialize. |cfg| provides uwsgi.opt
// and must outlive the worker (the worker's config does).
void register_uwsgi_module(const config::Config& cfg) noexcept;

// The worker is leaving (it drains, reached max_requests, or stops): every open websocket
// session gets a close frame with |code| (1012 Service Restart, 1001 Going Away) and counts as
// closed, so the app's next websocket_recv(), websocket_recv_nb() or websocket_send*() raises
// OSError and its request can end. A session in the middle of a send gets its close frame
// once that send is done (a frame is never cut); a handshake made later is closed at once.
// The first call's code stays. Call on the loop's greenlet, GIL held: the frames go out
// without waiting (best effort: a client whose socket is full just loses the connection).
void websocket_goodbye(uint16_t code) noexcept;

}  // namespace aiowsgi::worker
