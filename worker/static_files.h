// StaticFiles: answers requests under a [static] map prefix in the worker, on the loop's
// greenlet, without a core and without Python: the file goes out with sendfile in bounded
// slices, driven by the connection's writability, so a large download or a slow reader only
// holds its own connection. One per worker (owned by the Server); runs with the GIL held
// because the loop does, but calls no Python beyond the server's reader/writer registration.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/protocol/mime_types.h"
#include "worker/protocol/static_expires.h"

namespace aiowsgi::worker {

class Server;
struct Connection;

// The per-connection state of a static response being sent (Connection::static_send).
struct StaticSend;
struct StaticSendDeleter {
  void operator()(StaticSend* s) const noexcept;
};
using StaticSendPtr = std::unique_ptr<StaticSend, StaticSendDeleter>;

class StaticFiles {
 public:
  // Reads /etc/mime.types once (the built-in table otherwise).
  explicit StaticFiles(Server* server);
  StaticFiles(const StaticFiles&) = delete;
  StaticFiles& operator=(const StaticFiles&) = delete;

  // |conn|'s request head is complete (HTTP or uwsgi protocol). Returns false when its path
  // is under no map prefix (the caller hands it to a core). True: the request is answered
  // here; |conn| is then sending (ConnState::kStatic), back to reading a head, or closed.
  bool try_serve(Connection* conn) noexcept;
  // The loop's writer callback for a connection in ConnState::kStatic.
  void on_writable(Connection* conn) noexcept;
  // Before |conn| is closed by the server (its writer registration goes with it).
  void forget(Connection* conn) noexcept;

 private:
  struct Mapping {
    std::string prefix, folder;
  };
  void start_response(Connection* conn, std::string_view path) noexcept;
  // The Cache-Control (and Expires) lines for the file |rel| below |m|'s folder, sent as
  // |content_type|: the first [static] expires_* rule that matches, else [static] expires.
  std::string cache_fields(const Connection* conn, const Mapping& m, const std::string& rel,
                           std::string_view content_type) const;
  // Sends what it can of the response (at most one file slice); arms the writer for the rest.
  void pump(Connection* conn) noexcept;
  void finish(Connection* conn) noexcept;
  void set_writer(Connection* conn, bool on) noexcept;

  Server* server_;
  MimeTypes mime_;
  std::vector<Mapping> map_;   // longest prefix first
  std::string cache_control_;  // "Cache-Control: max-age=N\r\n" or ""
  ExpiryRules expiry_rules_;   // [static] expires_file, expires_uri, expires_type
};

}  // namespace aiowsgi::worker
