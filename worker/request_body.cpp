#include "worker/request_body.h"

#include <errno.h>

#include <algorithm>

#include "common/stats_board.h"
#include "worker/connection.h"
#include "worker/core.h"
#include "worker/server.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

// Unread request body the server reads and discards to keep a connection alive; past it the
// connection is closed instead.
constexpr uint64_t kMaxDrainBytes = 1 << 20;

// Bytes of a buffered body copied out per fill(): large enough for few calls, small enough
// that reading a body kept on disk takes no memory of its size.
constexpr size_t kBufferedChunk = 256 * 1024;

}  // namespace

std::optional<uint64_t> RequestBody::buffered_length() const {
  const Connection* conn = core_->connection();
  if (conn == nullptr || !conn->body_buffer) return std::nullopt;
  return conn->body_buffer->size();
}

BodyRead RequestBody::fill_buffered(const BodyBuffer& buffer) noexcept {
  if (pos_ < bytes_.size()) return BodyRead::kData;
  pos_ = 0;
  ssize_t n = buffer.read_at(offset_, kBufferedChunk, &bytes_);
  if (n < 0) {
    const int err = errno;
    core_->writer().set_close();
    PyErr_Format(PyExc_OSError, "reading the buffered request body: %s", errno_string(err).c_str());
    return BodyRead::kPythonError;
  }
  if (n == 0) return BodyRead::kEnd;
  offset_ += static_cast<uint64_t>(n);
  return BodyRead::kData;
}

BodyRead RequestBody::fill() noexcept {
  Connection* conn = core_->connection();
  if (conn->body_buffer) return fill_buffered(*conn->body_buffer);
  ResponseWriter& writer = core_->writer();
  RequestParser& p = conn->parser;
  while (pos_ >= bytes_.size()) {
    bytes_.clear();
    pos_ = 0;
    if (conn->uwsgi) {
      if (conn->uwsgi_body_left == 0) return BodyRead::kEnd;
      if (conn->buffered() > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(conn->buffered(), conn->uwsgi_body_left));
        bytes_.append(conn->data(), n);
        conn->consume(n);
        conn->uwsgi_body_left -= n;
        continue;
      }
    } else if (!p.has_body() || p.message_complete()) {
      return BodyRead::kEnd;
    }
    if (conn->buffered() > 0) {
      size_t consumed = 0;
      auto r = p.feed_body(conn->data(), conn->buffered(), &consumed, &bytes_);
      conn->consume(consumed);
      if (r == RequestParser::Result::kError) {
        writer.set_error_status(p.error_status());
        writer.set_close();
        PyErr_Format(PyExc_OSError, "bad request body: %d %s", p.error_status(),
                     std::string(p.error_reason()).c_str());
        return BodyRead::kPythonError;
      }
      continue;
    }
    if (!conn->uwsgi && p.expect_continue() && !sent_continue_ && !writer.headers_sent()) {
      sent_continue_ = true;
      static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      iovec iov{cont, sizeof cont - 1};
      if (!writer.send_all(&iov, 1)) {
        PyErr_SetString(PyExc_OSError, "client disconnected");
        return BodyRead::kPythonError;
      }
    }
    ssize_t n = conn->fill();
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const uint64_t received =
          conn->uwsgi ? conn->uwsgi->content_length().value_or(0) - conn->uwsgi_body_left
                      : p.body_bytes();
      const double budget =
          deadline_.remaining(core_->server()->config().limits.body_timeout, received);
      bool timed_out = budget <= 0;
      if (!timed_out) {
        const double start = now_seconds();
        const bool ready = core_->wait_io(
            wait_for_write(*conn, false) ? CoreState::kWaitWrite : CoreState::kWaitRead,
            std::min(budget, Core::kSocketTimeout));
        deadline_.add_wait(now_seconds() - start);
        if (ready) continue;
        timed_out = core_->wake_reason() == WakeReason::kTimeout;
      }
      writer.set_close();
      if (timed_out && !core_->killed() && !core_->cancelling()) writer.set_error_status(408);
      PyErr_SetString(core_->killed() ? PyExc_OSError : PyExc_TimeoutError,
                      core_->killed() ? "request cancelled" : "timed out reading the request body");
      return BodyRead::kPythonError;
    }
    writer.set_close();
    conn->peer_closed = true;
    score_read_error(core_->server()->context().score, core_->id());
    PyErr_SetString(PyExc_OSError, "client disconnected before sending the whole body");
    return BodyRead::kPythonError;
  }
  return BodyRead::kData;
}

bool RequestBody::finish() noexcept {
  Connection* conn = core_->connection();
  RequestParser& p = conn->parser;
  if (conn->uwsgi) return false;  // never reused
  if (!p.has_body() || p.message_complete()) return true;
  if (!core_->writer().keep_alive()) return false;
  // The client waits for "100 Continue" before sending: it was never asked to, so the body
  // is not coming; the connection cannot be reused.
  if (p.expect_continue() && !sent_continue_) return false;
  if (auto cl = p.content_length(); cl && *cl > kMaxDrainBytes) return false;
  uint64_t drained = 0;
  for (;;) {
    drained += bytes_.size() - pos_;
    pos_ = bytes_.size();
    if (drained > kMaxDrainBytes) return false;
    switch (fill()) {
      case BodyRead::kData:
        break;
      case BodyRead::kEnd:
        return true;
      case BodyRead::kPythonError:
        PyErr_Clear();  // nobody reads this body: the connection just closes
        return false;
    }
  }
}

}  // namespace aiowsgi::worker
