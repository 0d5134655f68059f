#include "worker/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <memory>
#include <string>
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

// Lines collected per write: at ~150 bytes a line, some 400 requests per write(2).
constexpr size_t kBatchBytes = 64 * 1024;

// A line is built in a stack buffer of this size; longer ones (long targets) spill to the heap.
using LineBuf = fmt::basic_memory_buffer<char, 1024>;

void put(LineBuf* b, std::string_view s) { b->append(s.data(), s.data() + s.size()); }

void put_uint(LineBuf* b, uint64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  b->append(tmp, r.ptr);
}

void put_int(LineBuf* b, int v) {  // signed: a core-less request logs core=-1
  char tmp[16];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  b->append(tmp, r.ptr);
}

// |v| (< 10^digits) with leading zeros.
void put_padded(LineBuf* b, unsigned v, int digits) {
  char tmp[8];
  for (int i = digits; i-- > 0; v /= 10) tmp[i] = static_cast<char>('0' + v % 10);
  b->append(tmp, tmp + digits);
}

// Request text in a log line: quotes, backslashes, control and non-ASCII bytes escaped, so a
// crafted path can neither break the line nor fake another one.
void append_escaped(LineBuf* b, std::string_view s, bool json) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t plain = 0;  // bytes of |s| already known to need no escape, not yet appended
  for (size_t i = 0; i < s.size(); ++i) {
    auto ch = static_cast<unsigned char>(s[i]);
    bool quote = ch == '"' || ch == '\\';
    if (!quote && ch >= 0x20 && ch < 0x7f) continue;
    b->append(s.data() + plain, s.data() + i);
    plain = i + 1;
    if (quote) {
      char esc[2] = {'\\', static_cast<char>(ch)};
      b->append(esc, esc + 2);
    } else if (json) {
      char esc[6] = {'\\', 'u', '0', '0', kHex[ch >> 4], kHex[ch & 15]};
      b->append(esc, esc + 6);
    } else {
      char esc[4] = {'\\', 'x', kHex[ch >> 4], kHex[ch & 15]};
      b->append(esc, esc + 4);
    }
  }
  b->append(s.data() + plain, s.data() + s.size());
}

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

// The start of every line: local time to the millisecond, pid and worker, in the layout of the
// server log ("[2024-05-01 12:00:00.123] [pid] [worker N] [access] ") or as the first JSON
// members ({"time":"2024-05-01T12:00:00.123+02:00","pid":N,). The date and the rest are
// rebuilt once a second, not formatted per line.
class LinePrefix {
 public:
  LinePrefix(bool json, int pid, int worker_id) : json_(json) {
    if (json_) {
      tail_ = "\",\"pid\":" + std::to_string(pid) + ",";
    } else {
      tail_ =
          "] [" + std::to_string(pid) + "] [worker " + std::to_string(worker_id) + "] [access] ";
    }
  }

  void append(const timespec& now, LineBuf* b) {
    if (now.tv_sec != second_ || date_.empty()) rebuild(now.tv_sec);
    put(b, date_);
    put_padded(b, static_cast<unsigned>(now.tv_nsec / 1000000), 3);
    put(b, zone_);
    put(b, tail_);
  }

 private:
  void rebuild(time_t sec) {
    second_ = sec;
    tm t{};
    localtime_r(&sec, &t);
    char buf[64];
    size_t n = strftime(buf, sizeof buf,
                        json_ ? "{\"time\":\"%Y-%m-%dT%H:%M:%S." : "[%Y-%m-%d %H:%M:%S.", &t);
    date_.assign(buf, n);
    zone_.clear();
    if (json_) {
      long off = t.tm_gmtoff / 60;
      char z[8] = {off < 0 ? '-' : '+'};
      off = off < 0 ? -off : off;
      z[1] = static_cast<char>('0' + off / 600 % 10);
      z[2] = static_cast<char>('0' + off / 60 % 10);
      z[3] = ':';
      z[4] = static_cast<char>('0' + off % 60 / 10);
      z[5] = static_cast<char>('0' + off % 10);
      zone_.assign(z, 6);
    }
  }

  bool json_;
  time_t second_ = 0;
  std::string date_, zone_, tail_;
};

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
  g_sink =
      std::make_unique<Sink>(log.file, std::move(fd), LinePrefix(json, getpid(), worker_id), json);
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
  LinePrefix prefix(json, pid, e.worker);
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
