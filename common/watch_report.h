// Watch reports: with [app] reload, a worker tells the master which source files it has
// loaded, so the master can watch them (master/file_watcher.h). A report is one datagram on
// the control socket: a ControlMessage of type kWatchFiles, then a payload of absolute
// paths, each ended by a NUL byte. Master and workers; no Python.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/control.h"

namespace aiowsgi {

// Payload bytes per datagram. Well under the socket's send buffer, and a path (PATH_MAX
// 4096) always fits in one; a longer list goes out as several reports.
inline constexpr size_t kMaxWatchPayload = 16 * 1024;
inline constexpr size_t kMaxWatchPath = 4096;

// Packs |paths| (taken from the front of the list, in order) into payloads of at most
// kMaxWatchPayload bytes. Paths that are empty, relative, longer than kMaxWatchPath or
// contain a NUL are dropped: the master would refuse them anyway.
std::vector<std::string> pack_watch_payloads(const std::vector<std::string>& paths);

// Sends one report without blocking. Returns 0, or the errno: EAGAIN when the master is
// behind (try again later), EPIPE/ECONNRESET when it is gone, EMSGSIZE for a payload over
// kMaxWatchPayload (nothing sent).
int send_watch_report(int fd, int worker_id, std::string_view payload);

// recv_control() that also accepts reports: for a plain message *payload is cleared; for a
// kWatchFiles datagram *payload holds its bytes (at most kMaxWatchPayload; longer or
// malformed datagrams are skipped, like any datagram of the wrong size).
RecvResult recv_control_or_files(int fd, ControlMessage* msg, std::string* payload);

// The master's check of a payload from a worker, which may be broken or hostile: splits at
// NUL bytes and keeps the paths that are absolute, at most kMaxWatchPath long, and free of
// control characters. *rejected counts the rest (a missing final NUL counts as one).
std::vector<std::string> parse_watch_payload(std::string_view payload, size_t* rejected);

}  // namespace aiowsgi
