// Worker process entry point: called by the master in a freshly forked child.
// Before Python starts it resets the signal state inherited from the master; then it embeds
// CPython, imports the app and runs the asyncio loop until told to stop. The context it gets
// (WorkerContext, ListenSocket) is the master's contract, in common/worker_context.h.
#pragma once

#include "common/worker_context.h"
#include "config/config.h"

namespace aiowsgi::worker {

// Runs the worker; returns the process exit status (common/exit_codes.h). The caller must
// pass it to _exit() and never return into the master's loop. Never throws.
int run_worker(const WorkerContext& ctx) noexcept;

}  // namespace aiowsgi::worker
