#include "worker/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iterator>
#include <memory>
#include <utility>

#include "common/fd_sink.h"
#include "common/stats_board.h"
#include "common/unique_fd.h"
#include "worker/connection.h"
#include "worker/line_batch.h"
#include "worker/server.h"

namespace aiowsgi::worker {
namespace access_log {
namespace {

// Lines collected per write: at ~120 bytes a line, some 500 requests per write(2).
constexpr size_t kBatchBytes = 64 * 1024;

// The access log's spdlog sink: each formatted line goes into a LineBatch, written out when
// it fills, on every server tick, before a reopen and when the worker stops (flush()).
// Only the loop's thread logs requests, hence no mutex.
class BatchSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  // Logs to stderr (not owned) when |path| is empty, else to |path|, already opened as |fd|.
  BatchSink(std::string path, UniqueFd fd)
      : path_(std::move(path)),
        file_(std::move(fd)),
        batch_(kBatchBytes, max_write_for(out_fd()),
               [this](const char* p, size_t n) { return write_all(p, n); }) {}

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

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    batch_.append(std::string_view(buf.data(), buf.size()));
  }
  void flush_() override { batch_.flush(); }

 private:
  int out_fd() const { return file_.get() >= 0 ? file_.get() : STDERR_FILENO; }

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
};

std::shared_ptr<BatchSink> g_sink;
std::shared_ptr<spdlog::logger> g_logger;
bool g_json = false;

// Request text in a log line: quotes, backslashes, control and non-ASCII bytes escaped, so a
// crafted path can neither break the line nor fake another one.
void append_escaped(fmt::memory_buffer* b, std::string_view s, bool json) {
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      b->push_back('\\');
      b->push_back(static_cast<char>(ch));
    } else if (ch < 0x20 || ch >= 0x7f) {
      if (json) {
        fmt::format_to(std::back_inserter(*b), "\\u{:04x}", static_cast<unsigned>(ch));
      } else {
        fmt::format_to(std::back_inserter(*b), "\\x{:02x}", static_cast<unsigned>(ch));
      }
    } else {
      b->push_back(static_cast<char>(ch));
    }
  }
}

void format_into(const Entry& e, bool json, fmt::memory_buffer* b) {
  auto out = std::back_inserter(*b);
  if (json) {
    fmt::format_to(out, "\"remote\":\"");
    append_escaped(b, e.remote, true);
    fmt::format_to(out, "\",\"method\":\"");
    append_escaped(b, e.method, true);
    fmt::format_to(out, "\",\"path\":\"");
    append_escaped(b, e.target, true);
    fmt::format_to(out,
                   "\",\"status\":{},\"bytes\":{},\"duration_us\":{},\"worker\":{},\"core\":{}",
                   e.status, e.bytes, e.duration_us, e.worker, e.core);
  } else {
    append_escaped(b, e.remote, false);
    fmt::format_to(out, " \"");
    append_escaped(b, e.method, false);
    b->push_back(' ');
    append_escaped(b, e.target, false);
    fmt::format_to(out, "\" {} {} {}.{:03}ms worker={} core={}", e.status, e.bytes,
                   e.duration_us / 1000, e.duration_us % 1000, e.worker, e.core);
  }
}

}  // namespace

Status setup(const config::LogConfig& log, int worker_id) {
  flush();
  g_logger.reset();
  g_sink.reset();
  if (!log.access) return Status::Ok();
  UniqueFd fd;
  if (!log.file.empty()) {
    if (Status s = FdSink::open_log_file(log.file, &fd); !s.ok()) return s;
  }
  auto sink = std::make_shared<BatchSink>(log.file, std::move(fd));
  g_json = log.format == "json";
  auto logger = std::make_shared<spdlog::logger>("access", sink);
  logger->set_level(spdlog::level::info);
  // The JSON pattern makes each line one object: the time comes from spdlog's cached
  // formatter, the rest from format_line(). The pid is written into the pattern once: %P
  // would call getpid(2) for every line.
  std::string pid = std::to_string(getpid());
  if (g_json) {
    logger->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",\"pid\":" + pid + ",%v}");
  } else {
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [" + pid + "] [worker " +
                        std::to_string(worker_id) + "] [access] %v");
  }
  g_sink = std::move(sink);
  g_logger = std::move(logger);
  return Status::Ok();
}

Status reopen() {
  if (!g_sink) return Status::Ok();
  return g_sink->reopen();
}

bool enabled() { return g_logger != nullptr; }

void flush() noexcept {
  if (!g_sink) return;
  try {
    g_sink->flush();
  } catch (...) {
  }
}

void format_line(const Entry& e, bool json, std::string* out) {
  fmt::memory_buffer b;
  format_into(e, json, &b);
  out->assign(b.data(), b.size());
}

void write(const Entry& e) noexcept {
  if (!g_logger) return;
  try {
    fmt::memory_buffer b;  // inline storage: no allocation for ordinary lines
    format_into(e, g_json, &b);
    g_logger->log(spdlog::level::info, spdlog::string_view_t(b.data(), b.size()));
  } catch (...) {
    // A log line is never worth failing a request for.
  }
}

}  // namespace access_log

namespace {

void write_entry(Server* server, Connection* conn, int core_id, int status,
                 const RequestFigures& f) noexcept {
  access_log::Entry e;
  if (conn->remote_addr) {
    const char* remote = PyUnicode_AsUTF8(conn->remote_addr.get());
    if (remote != nullptr) {
      e.remote = remote;
    } else {
      PyErr_Clear();
    }
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
