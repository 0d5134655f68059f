// The app's standard output and standard error. In a worker (and in the preload process) fds
// 1 and 2 are pipes that a thread of the process reads; each line goes to the server log
// marked [stdout] or [stderr] ("stream" in the JSON format), whatever [log] level, as the app
// wrote it. sys.stdout and sys.stderr are Python's own text files over those fds, so
// .buffer, fileno(), faulthandler and subprocesses given sys.stdout all work, and output
// that C code or a child process writes to fd 1 or 2 is logged the same way.
// A thread, not the event loop, reads the pipes: the app, a C extension or a subprocess the
// app waits for may write more than a pipe holds while the loop cannot run; only a reader
// that never waits for the loop keeps such a write from blocking the worker forever.
// No Python, no GIL.
#pragma once

#include <time.h>

#include <string>
#include <string_view>

#include "common/status.h"
#include "worker/log_line.h"

namespace aiowsgi::worker::app_output {

enum class Stream { kStdout, kStderr };

// Makes fds 1 and 2 pipes (after moving the server log's own standard error out of the way)
// and starts the thread that logs their lines as |process| ("worker 3", "preload") with
// worker id |worker_id| (0 in the preload process), as JSON objects when |json| ([log]
// format = "json"). Called in the child before
// Py_Initialize, so that Python builds sys.stdout and sys.stderr over the pipes; again in a
// worker forked from the preload process, whose inherited pipes are then replaced by its
// own. An Io status, with fds 1 and 2 left as they were, when a pipe cannot be made.
Status start(bool json, std::string_view process, int worker_id);

// Logs what is already in the pipes (a last unfinished line too), then ends the thread.
// Called before the process exits, and in the preload process before each fork (a thread
// would not survive the fork, and could hold the log's lock across it). Writes made while
// the thread is stopped wait in the pipes. A no-op when not started.
void stop() noexcept;

// Calls stop() on every way out of the scope of a process's main function, so that what the
// app wrote last is logged too.
class StopOnExit {
 public:
  StopOnExit() = default;
  StopOnExit(const StopOnExit&) = delete;
  StopOnExit& operator=(const StopOnExit&) = delete;
  StopOnExit(StopOnExit&&) = delete;
  StopOnExit& operator=(StopOnExit&&) = delete;
  ~StopOnExit() { stop(); }
};

// Starts the thread again over the same pipes, after stop() (the preload process, after a
// fork). A no-op when there are no pipes.
void resume() noexcept;

// Logs what the pipes hold now before the caller logs anything else: stop(), then resume().
// For output that must come before the lines that follow it (SIGUSR2: faulthandler's stack,
// written from the signal handler, before the loop's own stacks). Costs a thread start.
void flush() noexcept;

// One app output line as written to the log, newline included: |prefix| (made for the
// stream's tag), then the text as it is, or in JSON the worker, the stream and the text
// escaped. Exposed for tests.
void format_line(log_line::LinePrefix* prefix, bool json, int worker_id, Stream stream,
                 std::string_view text, const timespec& now, log_line::Buf* out);

}  // namespace aiowsgi::worker::app_output
