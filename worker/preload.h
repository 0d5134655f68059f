// Preload process (SPEC.md "Preload"): forked by the master for one generation, it starts the
// interpreter, imports the app once, freezes the collector and then forks that generation's
// workers when the master asks, over its preload channel (common/preload_channel.h). Each
// worker is double-forked, so it is re-parented to the master (a child subreaper), which
// supervises it like any worker. Preload process and its workers; needs the GIL (held
// throughout, single-threaded).
#pragma once

#include "worker/worker.h"

namespace aiowsgi::worker {

// Runs the preload process (a WorkerMain: the master forks it like a worker). |ctx|
// describes the generation: config, listen sockets, the master's descriptors to close; its
// control_fd is this process's end of the preload channel; worker_id and score are unused.
// Returns the exit status (kExitAppLoadError when the app cannot be imported, kExitBootError
// when the interpreter cannot start, kExitOk when the master closed the channel); the caller
// passes it to _exit(). Workers it forks never return here. Never throws.
int run_preload(const WorkerContext& ctx) noexcept;

}  // namespace aiowsgi::worker
