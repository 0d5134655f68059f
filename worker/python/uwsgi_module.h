// The `uwsgi` compatibility module a worker gives its app unless [app] uwsgi_compat = false:
// the part of uWSGI's Python API that real asyncio-engine code uses (websocket_*, suspend,
// wait_fd_read/write, ready_fd, async_sleep, connection_fd, worker_id, numproc, opt), working
// under this engine (SPEC.md "Python side"). Workers only; everything here needs the GIL.
#pragma once

#include "config/config.h"

namespace aiowsgi::worker {

// Makes `import uwsgi` give the module; call before Py_Initialize. |cfg| provides uwsgi.opt
// and must outlive the worker (the worker's config does).
void register_uwsgi_module(const config::Config& cfg) noexcept;

}  // namespace aiowsgi::worker
