// Logging: the spdlog setup shared by the master and the workers (one default logger).
// Sinks are synchronous and write each line with a single write(2) to stderr or to the
// [log] file (O_APPEND), so lines from several processes never interleave and nothing is
// left in a buffer across fork or _exit. No Python, no GIL; safe to call from any thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace aiowsgi::log {

// Installs the default logger: level |level| ("trace" "debug" "info" "warn" "error"),
// writing to |file| (appended, created 0644) or to stderr when |file| is empty, each line
// tagged with the time, the pid and |process_name| ("master", "worker 3").
// Returns a Config status for an unknown level and an Io status when the file cannot be
// opened; the previous logger is then left in place. Called by the master before anything
// is bound; may be called again (the previous file is closed).
Status setup(std::string_view level, const std::string& file, std::string_view process_name);

// Like setup("info", "", process_name) but cannot fail: used first thing in main() so that
// everything logged before the config is read reaches stderr in the same format.
void setup_stderr(std::string_view process_name);

// Changes the process name in the line prefix. Called in a worker right after fork.
void set_process_name(std::string_view process_name);

// Changes the level; a Config status (and no change) for an unknown level name.
Status set_level(std::string_view level);

// Reopens the log file by name (after logrotate moved it away): SIGUSR1 in the master,
// kReopenLogs in a worker. A no-op when logging to stderr. On failure the old file stays
// in use and an Io status is returned.
Status reopen();

// Gives the open log file to |uid|:|gid| through its descriptor (the master, as root, before
// dropping privileges, so that SIGUSR1 can reopen it later). A no-op when logging to stderr.
Status chown_file(uid_t uid, gid_t gid);

// Writes out anything buffered. The sinks do not buffer, but the master still calls this
// right before fork so a buffering sink added later cannot print a line twice.
void flush();

// Keeps the logs' standard output and error on close-on-exec copies of fds 1 and 2, so that
// those fds can become something else (a worker's pipes for the app's output) while the
// server log and the access log still reach the master's standard error (or its standard
// output, for [log] file = "/dev/stdout"). Once per process: a child forked afterwards
// inherits the copies. An Io status (and nothing changed) when an fd cannot be copied.
Status keep_standard_streams_apart();

// The fd the logs write to when they go to standard error (2, or its copy).
int stderr_fd();

// Writes |lines| (whole, formatted lines) to the server log as they are, whatever the level,
// with one write(2). Safe from any thread.
void write_raw(std::string_view lines);

// True when logs go to a file rather than stderr (fatal start-up errors then go to both).
bool logging_to_file();

}  // namespace aiowsgi::log
