#include "worker/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <iterator>
#include <memory>
#include <mutex>
#include <utility>

#include "common/fd_sink.h"
#include "common/stats_board.h"
#include "common/unique_fd.h"
#include "worker/connection.h"
#include "worker/server.h"

namespace aiowsgi::worker {
namespace access_log {
namespace {

std::shared_ptr<FdSink> g_sink;
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
  g_logger.reset();
  g_sink.reset();
  if (!log.access) return Status::Ok();
  std::shared_ptr<FdSink> sink;
  if (log.file.empty()) {
    sink = std::make_shared<FdSink>();
  } else {
    UniqueFd fd;
    if (Status s = FdSink::open_log_file(log.file, &fd); !s.ok()) return s;
    sink = std::make_shared<FdSink>(log.file, std::move(fd));
  }
  g_json = log.format == "json";
  auto logger = std::make_shared<spdlog::logger>("access", sink);
  logger->set_level(spdlog::level::info);
  // The JSON pattern makes each line one object: time and pid come from spdlog's cached
  // formatters, the rest from format_line().
  if (g_json) {
    logger->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",\"pid\":%P,%v}");
  } else {
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%P] [worker " + std::to_string(worker_id) +
                        "] [access] %v");
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
