// Access log: one line per request, formatted by the worker that served it ([log] format:
// "text" in the server log's layout, or one JSON object per line) and written to
// the [log] file or stderr in batches of whole lines (LineBatch): at least every server tick,
// when 64 KiB are buffered, before a reopen and when the worker stops. Also where a finished
// request is counted on the StatsBoard. Workers only, on the loop's thread; request_done()
// runs with the GIL held but does no Python work beyond reading a cached str.
#pragma once

#include <time.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"

namespace aiowsgi::worker {

class Server;
struct Connection;

namespace access_log {

// Opens the access log of worker |worker_id| as [log] says (nothing when access = false).
// Called once in the worker before it serves; an Io status when the file cannot be opened
// (the access log is then off).
Status setup(const config::LogConfig& log, int worker_id);
// Writes out the buffered lines, then reopens the file by name (SIGUSR1 / kReopenLogs, after
// logrotate moved it): lines logged before land in the old file, later ones in the new.
Status reopen();
bool enabled();
// Writes out the buffered lines: called on every server tick, when draining and before the
// worker exits. Lines still buffered when a worker is killed (SIGKILL) are lost.
void flush() noexcept;

struct Entry {
  std::string_view remote, method, target;
  int status = 0;  // 0: no response was sent
  uint64_t bytes = 0, duration_us = 0;
  int worker = 0, core = 0;
};
// Formats |e| as one line ("text" or "json") into |out| (no newline). Exposed for tests.
void format_line(const Entry& e, bool json, std::string* out);
// The whole line as written for |e| at |now| by process |pid|, newline included. For tests.
void format_record(const Entry& e, bool json, int pid, const timespec& now, std::string* out);
// Formats |e| into the batch. A no-op when the access log is off.
void write(const Entry& e) noexcept;

}  // namespace access_log

// A core finished a request on |conn| with HTTP |status| (0: none sent; a websocket session
// counts as 101): counts it on the StatsBoard and logs its access-log line.
void request_done(Server* server, Connection* conn, int core_id, int status) noexcept;
// The same for a request the loop answered without a core (a [static] file): |bytes| sent in
// |duration_us|. Its access-log line says core=-1.
void static_request_done(Server* server, Connection* conn, int status, uint64_t bytes,
                         uint64_t duration_us) noexcept;

}  // namespace aiowsgi::worker
