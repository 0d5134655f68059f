#include "worker/static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "common/stats_board.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "worker/access_log.h"
#include "worker/connection.h"
#include "worker/protocol/request_target.h"
#include "worker/protocol/response_head.h"
#include "worker/protocol/static_path.h"
#include "worker/server.h"
#include "worker/static_open.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

// The response on one connection: its head (and any small body) from head_pos, then
// |remaining| bytes of |file| from |offset|.
struct StaticSend {
  std::string head;
  size_t head_pos = 0;
  UniqueFd file;
  off_t offset = 0;
  uint64_t remaining = 0;
  int status = 0;
  bool keep_alive = false;
  bool body_pending = false;  // the request had a body we did not read: linger before closing
  bool writer = false;        // the loop watches the fd for writability for us
  bool pipelined = false;     // response done; the next request is already buffered
  uint64_t start_ns = 0;
  uint64_t sent = 0;  // bytes written for this response (head included)
};

void StaticSendDeleter::operator()(StaticSend* s) const noexcept { delete s; }

namespace {

// One loop turn sends at most this much of a file to one connection, so a large download
// shares the loop with every other connection (nginx's sendfile_max_chunk does the same).
constexpr size_t kSliceBytes = 256 * 1024;
// A reader that takes no byte for this long is dropped (the cores' socket timeout).
constexpr double kSendTimeoutSeconds = 60;

// A request header's value, whatever the protocol; nullopt when absent. |http_name| as sent
// over HTTP ("Range"), |cgi_name| as a uwsgi variable ("HTTP_RANGE").
std::optional<std::string_view> header(const Connection* conn, std::string_view http_name,
                                       std::string_view cgi_name) {
  if (conn->uwsgi) return conn->uwsgi->find(cgi_name);
  const RequestParser& p = conn->parser;
  for (size_t i = 0; i < p.header_count(); ++i) {
    std::string_view n = p.header_name(i);
    if (n.size() != http_name.size()) continue;
    bool same = true;
    for (size_t j = 0; j < n.size() && same; ++j) {
      same = (n[j] | 0x20) == (http_name[j] | 0x20);
    }
    if (same) return p.header_value(i);
  }
  return std::nullopt;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

StaticFiles::StaticFiles(Server* server) : server_(server) {
  const auto& cfg = server->config().statics;
  for (const auto& [prefix, folder] : cfg.map) map_.push_back({prefix, folder});
  if (cfg.expires > 0) cache_control_ = fmt::format("Cache-Control: max-age={}\r\n", cfg.expires);
  for (auto [target, rules] : {std::pair(ExpiryRules::Target::kFile, &cfg.expires_file),
                               std::pair(ExpiryRules::Target::kUri, &cfg.expires_uri),
                               std::pair(ExpiryRules::Target::kType, &cfg.expires_type)}) {
    if (Status st = expiry_rules_.add(target, *rules); !st.ok()) {
      spdlog::warn("static files: expiry rule left out: {}", st.message());
    }
  }
  size_t n = mime_.load_file("/etc/mime.types");
  spdlog::debug("static files: {} extensions from /etc/mime.types{}", n,
                n == 0 ? " (not readable: built-in table)" : "");
}

bool StaticFiles::try_serve(Connection* conn) noexcept {
  std::string_view raw;
  std::string decoded;
  if (conn->uwsgi) {
    // nginx's uwsgi_params send PATH_INFO already decoded ($document_uri).
    if (auto p = conn->uwsgi->find("PATH_INFO")) {
      decoded.assign(p->data(), p->size());
    } else {
      raw = conn->uwsgi->find("REQUEST_URI").value_or("");
      raw = raw.substr(0, raw.find_first_of("?#"));
      percent_decode(raw, &decoded);
    }
  } else {
    raw = conn->parser.path();
    if (raw.find('%') == std::string_view::npos) {
      // The common case: nothing to decode; an app request costs one prefix comparison.
      bool any = false;
      for (const Mapping& m : map_) any = any || raw.substr(0, m.prefix.size()) == m.prefix;
      if (!any) return false;
    }
    percent_decode(raw, &decoded);
  }
  for (const Mapping& m : map_) {
    if (decoded.compare(0, m.prefix.size(), m.prefix) == 0) {
      conn->core = nullptr;  // a pipelined request taken from a core's connection
      start_response(conn, decoded);
      return true;
    }
  }
  return false;
}

std::string StaticFiles::cache_fields(const Connection* conn, const Mapping& m,
                                      const std::string& rel, std::string_view content_type) const {
  if (expiry_rules_.empty()) return cache_control_;
  std::string file_path = m.folder;
  if (file_path.empty() || file_path.back() != '/') file_path += '/';
  file_path += rel;
  // The request URI as sent, as uWSGI matches it: not decoded, with the query.
  std::string uri;
  if (conn->uwsgi) {
    uri = conn->uwsgi->find("REQUEST_URI").value_or(conn->uwsgi->find("PATH_INFO").value_or(""));
  } else {
    uri = conn->parser.path();
    if (!conn->parser.query().empty()) uri.append("?").append(conn->parser.query());
  }
  std::optional<int64_t> seconds = expiry_rules_.match(file_path, uri, content_type);
  if (!seconds) return cache_control_;
  return expiry_fields(*seconds, ::time(nullptr));
}

void StaticFiles::start_response(Connection* conn, std::string_view path) noexcept {
  StaticSend* s = nullptr;
  try {
    conn->static_send = StaticSendPtr(new StaticSend);
    s = conn->static_send.get();
    s->start_ns = monotonic_ns();
    std::string_view method =
        conn->uwsgi ? conn->uwsgi->find("REQUEST_METHOD").value_or("GET") : conn->parser.method();
    bool head_only = method == "HEAD";
    bool has_body = conn->uwsgi ? conn->uwsgi_body_left > 0 : conn->parser.has_body();
    s->body_pending = has_body;
    s->keep_alive = !conn->uwsgi && !has_body && conn->parser.keep_alive() && !server_->draining();
    std::string& h = s->head;

    ResponseHead rh;
    HeadOptions opts;
    opts.http11 = conn->parser.http_minor() != 0;
    opts.keep_alive = s->keep_alive;
    opts.date = server_->date_header();
    opts.added = server_->added_headers();
    // Builds an answer without a file: |body| is sent unless HEAD.
    auto plain = [&](int status, std::string_view extra) {
      s->status = status;
      std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
      rh.reset();
      rh.set_status(status);
      rh.append_fields("Content-Type: text/plain\r\n");
      rh.append_fields(extra);
      rh.set_content_length(body.size());
      s->file.reset();
      s->remaining = 0;
      h.clear();
      append_head(rh, opts, &h);
      if (!head_only) h += body;
    };

    const Mapping* m = nullptr;
    for (const Mapping& c : map_) {
      if (path.compare(0, c.prefix.size(), c.prefix) == 0) {
        m = &c;
        break;
      }
    }
    if (method != "GET" && method != "HEAD") {
      plain(405, "Allow: GET, HEAD\r\n");
    } else if (auto rel = static_path::relative_path(path.substr(m->prefix.size())); !rel) {
      plain(404, "");
    } else {
      UniqueFd dir(::open(m->folder.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      struct stat st {
      }, gz_st{};
      UniqueFd file, gz;
      int err =
          dir ? static_open::open_beneath(dir.get(), *rel, static_open::Method::kAuto, &file, &st)
              : errno;
      bool want_gzip = false;
      if (auto ae = header(conn, "Accept-Encoding", "HTTP_ACCEPT_ENCODING"))
        want_gzip = static_path::accepts_gzip(*ae);
      bool has_gz = false;
      if (err == 0) {
        // The .gz sibling is looked for on every request: its presence decides Vary, which
        // a cache needs also on the answers that do not use it.
        has_gz = static_open::open_beneath(dir.get(), *rel + ".gz", static_open::Method::kAuto, &gz,
                                           &gz_st) == 0;
      }
      if (err != 0) {
        if (err == EACCES || err == EPERM) {
          plain(403, "");
        } else if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV ||
                   err == EISDIR || err == ENAMETOOLONG) {
          plain(404, "");
        } else {
          spdlog::warn("static file {}: {}", *rel, errno_string(err));
          plain(500, "");
        }
      } else {
        bool use_gz = has_gz && want_gzip;
        if (use_gz) {
          file = std::move(gz);
          st = gz_st;
        }
        std::string etag =
            static_path::make_etag(st.st_ino, static_cast<uint64_t>(st.st_size), mtime_ns(st));
        std::string last_modified = static_path::format_http_date(st.st_mtim.tv_sec);
        // RFC 9110 13.2.2: If-None-Match, when present, decides alone.
        bool not_modified = false;
        if (auto inm = header(conn, "If-None-Match", "HTTP_IF_NONE_MATCH")) {
          not_modified = static_path::none_match_hits(*inm, etag);
        } else if (auto ims = header(conn, "If-Modified-Since", "HTTP_IF_MODIFIED_SINCE")) {
          auto t = static_path::parse_http_date(*ims);
          not_modified = t && st.st_mtim.tv_sec <= *t;
        }
        uint64_t size = static_cast<uint64_t>(st.st_size);
        static_path::Range range;
        if (!not_modified && method == "GET") {
          if (auto r = header(conn, "Range", "HTTP_RANGE")) {
            auto ifr = header(conn, "If-Range", "HTTP_IF_RANGE");
            if (!ifr || static_path::if_range_allows(*ifr, etag, st.st_mtim.tv_sec))
              range = static_path::parse_range(*r, size);
          }
        }
        std::string_view content_type = mime_.lookup(*rel);
        std::string validators = "Last-Modified: " + last_modified + "\r\nETag: " + etag + "\r\n";
        validators += cache_fields(conn, *m, *rel, content_type);
        if (has_gz) validators += "Vary: Accept-Encoding\r\n";
        if (range.kind == static_path::Range::Kind::kUnsatisfiable) {
          plain(416, validators + "Content-Range: bytes */" + std::to_string(size) + "\r\n");
        } else {
          uint64_t first = 0, count = size;
          if (not_modified) {
            s->status = 304;
            count = 0;
          } else if (range.kind == static_path::Range::Kind::kSingle) {
            s->status = 206;
            first = range.first;
            count = range.last - range.first + 1;
          } else {
            s->status = 200;
          }
          rh.set_status(s->status);
          if (s->status != 304) {
            rh.append_fields("Content-Type: ");
            rh.append_fields(content_type);
            rh.append_fields(use_gz ? "\r\nContent-Encoding: gzip\r\n" : "\r\n");
            rh.set_content_length(count);
            rh.append_fields("Accept-Ranges: bytes\r\n");
          }
          if (s->status == 206) {
            rh.append_fields(
                fmt::format("Content-Range: bytes {}-{}/{}\r\n", first, first + count - 1, size));
          }
          rh.append_fields(validators);
          append_head(rh, opts, &h);
          if (!head_only && count > 0) {
            s->file = std::move(file);
            s->offset = static_cast<off_t>(first);
            s->remaining = count;
          }
        }
      }
    }
  } catch (const std::exception& e) {  // std::bad_alloc: nothing sensible to send
    spdlog::error("static file response: {}", e.what());
    conn->static_send.reset();
    server_->reject(conn, 500);
    return;
  }
  conn->state = ConnState::kStatic;
  conn->deadline = now_seconds() + kSendTimeoutSeconds;
  pump(conn);
}

void StaticFiles::set_writer(Connection* conn, bool on) noexcept {
  StaticSend* s = conn->static_send.get();
  if (s->writer == on) return;
  if (on) {
    s->writer = server_->watch_writable(conn);
  } else {
    server_->unwatch_writable(conn);
    s->writer = false;
  }
}

void StaticFiles::pump(Connection* conn) noexcept {
  StaticSend* s = conn->static_send.get();
  while (s->head_pos < s->head.size()) {
    // MSG_MORE: the head waits for the first file bytes, so a small file leaves in one
    // segment even with TCP_NODELAY.
    iovec iov{s->head.data() + s->head_pos, s->head.size() - s->head_pos};
    ssize_t n = transport_send(*conn, &iov, 1, /*more=*/s->remaining > 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        set_writer(conn, true);
        if (!s->writer) break;
        return;
      }
      break;  // the client is gone
    }
    s->head_pos += static_cast<size_t>(n);
    s->sent += static_cast<uint64_t>(n);
    server_->tx_bytes += static_cast<uint64_t>(n);
    conn->deadline = now_seconds() + kSendTimeoutSeconds;
  }
  if (s->head_pos < s->head.size()) {
    s->keep_alive = false;
    finish(conn);
    return;
  }
  if (s->remaining > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(s->remaining, kSliceBytes));
    ssize_t n;
    do {
      n = transport_sendfile(*conn, s->file.get(), &s->offset, want);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
      set_writer(conn, true);
      if (s->writer) return;
    }
    if (n <= 0) {
      // An error, the client gone, or the file shrank under us (n == 0): the declared length
      // cannot be met, so the connection must end.
      if (n == 0) spdlog::warn("static file shrank while being sent; closing the connection");
      s->keep_alive = false;
      finish(conn);
      return;
    }
    s->remaining -= static_cast<uint64_t>(n);
    s->sent += static_cast<uint64_t>(n);
    server_->tx_bytes += static_cast<uint64_t>(n);
    conn->deadline = now_seconds() + kSendTimeoutSeconds;
    if (s->remaining > 0) {
      // More to send: come back on the next writable event, after the loop's other work.
      set_writer(conn, true);
      if (s->writer) return;
      s->keep_alive = false;
    }
  }
  finish(conn);
}

void StaticFiles::finish(Connection* conn) noexcept {
  StaticSend* s = conn->static_send.get();
  uint64_t now = monotonic_ns();
  uint64_t duration_us = now > s->start_ns ? (now - s->start_ns) / 1000 : 0;
  bool complete = s->head_pos == s->head.size() && s->remaining == 0;
  static_request_done(server_, conn, s->status, s->sent, duration_us);
  s->file.reset();
  bool keep = complete && s->keep_alive && !conn->peer_closed && !server_->draining();
  if (!keep) {
    set_writer(conn, false);
    bool linger = s->body_pending && complete;
    conn->static_send.reset();
    if (linger) {
      server_->linger_close(conn);
    } else {
      server_->release_connection(conn, false);
    }
    return;
  }
  conn->parser.reset();
  if (conn->buffered() > 0) {
    // A pipelined request is already here: serve it on the next loop turn (the socket is
    // writable, so the writer fires at once), not by recursion from here.
    s->pipelined = true;
    s->head.clear();
    s->head_pos = 0;
    set_writer(conn, true);
    if (s->writer) return;
  }
  set_writer(conn, false);
  conn->static_send.reset();
  server_->release_connection(conn, true);
}

void StaticFiles::on_writable(Connection* conn) noexcept {
  StaticSend* s = conn->static_send.get();
  if (s == nullptr) {
    server_->unwatch_writable(conn);
    return;
  }
  if (!s->pipelined) {
    pump(conn);
    return;
  }
  set_writer(conn, false);
  conn->static_send.reset();
  server_->resume_reading(conn);  // may close conn
}

void StaticFiles::forget(Connection* conn) noexcept {
  if (conn->static_send && conn->static_send->writer) server_->unwatch_writable(conn);
  conn->static_send.reset();
}

}  // namespace aiowsgi::worker
