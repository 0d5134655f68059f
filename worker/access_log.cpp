#include "worker/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "common/fd_sink.h"
#include "common/log.h"
#include "common/stats_board.h"
#include "common/unique_fd.h"
#include "worker/connection.h"
#include "worker/line_batch.h"
#include "worker/log_line.h"
#include "worker/protocol/forwarded.h"
#include "worker/server.h"

namespace aiowsgi::worker {
namespace access_log {
namespace {

// Lines collected per write: at ~150 bytes a line, some 400 requests per write(2).
constexpr size_t kBatchBytes = 64 * 1024;

using log_line::append_escaped;
using log_line::LinePrefix;
using log_line::put;
using log_line::put_int;
using log_line::put_padded;
using log_line::put_uint;
using LineBuf = log_line::Buf;

void format_into(const Entry& e, bool json, LineBuf* b) {
  if (json) {
    put(b, "\"remote\":\"");
    append_escaped(b, e.remote, true);
    put(b, "\",\"method\":\"");
    append_escaped(b, e.method, true);
    put(b, "\",\"path\":\"");
    append_escaped(b, e.target, true);
    put(b, "\",\"status\":");
    put_int(b, e.status);
    put(b, ",\"bytes\":");
    put_uint(b, e.bytes);
    put(b, ",\"duration_us\":");
    put_uint(b, e.duration_us);
    put(b, ",\"worker\":");
    put_int(b, e.worker);
    put(b, ",\"core\":");
    put_int(b, e.core);
  } else {
    append_escaped(b, e.remote, false);
    put(b, " \"");
    append_escaped(b, e.method, false);
    put(b, " ");
    append_escaped(b, e.target, false);
    put(b, "\" ");
    put_int(b, e.status);
    put(b, " ");
    put_uint(b, e.bytes);
    put(b, " ");
    put_uint(b, e.duration_us / 1000);
    put(b, ".");
    put_padded(b, static_cast<unsigned>(e.duration_us % 1000), 3);
    put(b, "ms worker=");
    put_int(b, e.worker);
    put(b, " core=");
    put_int(b, e.core);
  }
}

// The open access log: where lines go, the batch they wait in and how each starts. Used on
// the loop's thread only.
class Sink {
 public:
  // Writes to stderr (not owned) when |path| is empty, else to |path|, already opened as |fd|.
  Sink(std::string path, UniqueFd fd, LinePrefix prefix, bool json)
      : path_(std::move(path)),
        file_(std::move(fd)),
        batch_(kBatchBytes, max_write_for(out_fd()),
               [this](const char* p, size_t n) { return write_all(p, n); }),
        prefix_(std::move(prefix)),
        json_(json) {}

  void log(const Entry& e) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    LineBuf b;
    prefix_.append(now, &b);
    format_into(e, json_, &b);
    put(&b, json_ ? "}\n" : "\n");
    batch_.append(std::string_view(b.data(), b.size()));
  }

  void flush() { batch_.flush(); }

  // Writes out what is buffered (to the file it was meant for), then opens |path_| anew.
  Status reopen() {
    batch_.flush();
    if (path_.empty()) return Status::Ok();
    UniqueFd fd;
    if (Status s = FdSink::open_log_file(path_, &fd); !s.ok()) return s;
    file_ = std::move(fd);
    batch_.set_max_write(max_write_for(out_fd()));
    return Status::Ok();
  }

 private:
  // Standard error as the server log sees it: fd 2 is the app's stderr pipe in a worker.
  int out_fd() const { return file_.get() >= 0 ? file_.get() : log::stderr_fd(); }

  // A regular file opened O_APPEND takes each write(2) in one piece, whatever its size.
  // Anything else (a pipe, journald's socket, a terminal) may interleave another process's
  // output into a write larger than PIPE_BUF, so batches go out in chunks of whole lines.
  static size_t max_write_for(int fd) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return kBatchBytes;
    return PIPE_BUF;
  }

  bool write_all(const char* p, size_t left) {
    int fd = out_fd();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;  // nowhere left to report a logging failure
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return true;
  }

  std::string path_;
  UniqueFd file_;
  LineBatch batch_;
  LinePrefix prefix_;
  bool json_;
};

std::unique_ptr<Sink> g_sink;

}  // namespace

Status setup(const config::LogConfig& log, int worker_id) {
  flush();
  g_sink.reset();
  if (!log.access) return Status::Ok();
  UniqueFd fd;
  if (!log.file.empty()) {
    if (Status s = FdSink::open_log_file(log.file, &fd); !s.ok()) return s;
  }
  bool json = log.format == "json";
  g_sink = std::make_unique<Sink>(
      log.file, std::move(fd),
      LinePrefix(json, getpid(), "worker " + std::to_string(worker_id), "access"), json);
  return Status::Ok();
}

Status reopen() {
  if (!g_sink) return Status::Ok();
  return g_sink->reopen();
}

bool enabled() { return g_sink != nullptr; }

void flush() noexcept {
  if (g_sink) g_sink->flush();
}

void format_line(const Entry& e, bool json, std::string* out) {
  LineBuf b;
  format_into(e, json, &b);
  out->assign(b.data(), b.size());
}

void format_record(const Entry& e, bool json, int pid, const timespec& now, std::string* out) {
  LinePrefix prefix(json, pid, "worker " + std::to_string(e.worker), "access");
  LineBuf b;
  prefix.append(now, &b);
  format_into(e, json, &b);
  put(&b, json ? "}\n" : "\n");
  out->assign(b.data(), b.size());
}

void write(const Entry& e) noexcept {
  if (!g_sink) return;
  try {
    g_sink->log(e);
  } catch (...) {
    // A log line is never worth failing a request for.
  }
}

}  // namespace access_log

namespace {

void write_entry(Server* server, Connection* conn, int core_id, int status,
                 const RequestFigures& f) noexcept {
  access_log::Entry e;
  std::string client;  // a static file's client per a trusted proxy (no environ was built)
  if (core_id < 0 && conn->trusted_peer && !conn->uwsgi) {
    try {
      client = resolve_forwarded(forwarded_fields(conn->parser), server->trusted_proxies()).client;
    } catch (...) {  // std::bad_alloc: log the peer
    }
  }
  if (!conn->forwarded_client.empty()) {  // what a trusted proxy said
    e.remote = conn->forwarded_client;
  } else if (!client.empty()) {
    e.remote = client;
  } else {
    e.remote = conn->remote_addr;
  }
  if (conn->uwsgi) {  // uwsgi protocol: the request line comes as vars
    e.method = conn->uwsgi->find("REQUEST_METHOD").value_or("");
    e.target = conn->uwsgi->find("REQUEST_URI").value_or("");
  } else {
    e.method = conn->parser.method();
    e.target = conn->parser.target();
  }
  e.status = status;
  e.bytes = f.bytes;
  e.duration_us = f.duration_us;
  e.worker = server->context().worker_id;
  e.core = core_id;
  access_log::write(e);
}

}  // namespace

void request_done(Server* server, Connection* conn, int core_id, int status) noexcept {
  // A websocket session: the handshake sent 101 on the app's behalf, and the session's
  // bytes and duration are the request's.
  if (status == 0 && conn != nullptr && conn->upgraded) status = 101;
  RequestFigures f = score_request_end(server->context().score, core_id, status, server->tx_bytes,
                                       server->exceptions, server->harakiri_count);
  if (!access_log::enabled() || conn == nullptr) return;
  write_entry(server, conn, core_id, status, f);
}

void static_request_done(Server* server, Connection* conn, int status, uint64_t bytes,
                         uint64_t duration_us) noexcept {
  RequestFigures f;
  f.bytes = bytes;
  f.duration_us = duration_us;
  score_request_coreless(server->context().score, status, duration_us, server->tx_bytes);
  if (!access_log::enabled() || conn == nullptr) return;
  write_entry(server, conn, -1, status, f);
}

}  // namespace aiowsgi::worker
