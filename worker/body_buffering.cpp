// Server, request bodies read whole on the loop before a core is taken ([limits]
// buffer_body_bytes, uWSGI's post-buffering): between routing a complete head and admitting
// it, the body goes into the connection's BodyBuffer (worker/body_buffer.h), so that a slow
// upload holds a connection, never a core. Workers only; the loop's greenlet, GIL held.
#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "worker/core.h"
#include "worker/protocol/body_deadline.h"
#include "worker/server.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

// recv() calls per readiness of one buffering connection (64 KiB each): enough to keep up
// with a fast client, few enough that a fast client cannot starve the loop's other work.
constexpr int kBodyReadsPerWake = 4;

}  // namespace

bool Server::wants_buffering(const Connection& conn) const noexcept {
  if (config().limits.buffer_body_bytes <= 0) return false;
  if (conn.uwsgi) return conn.uwsgi_body_left > 0;
  // An upgrade's bytes after the head belong to the app's own protocol, not to a body.
  return conn.parser.has_body() && !conn.parser.upgrade();
}

HeadRoute Server::start_buffering(Connection* conn) noexcept {
  // A pipelined request of a core's connection leaves the core unless its body is all here:
  // until then no wake-up may reach that core through the connection.
  Core* core = std::exchange(conn->core, nullptr);
  conn->body_buffer = std::make_unique<BodyBuffer>(
      static_cast<size_t>(config().limits.buffer_body_bytes), temp_dir_);
  if (conn->uwsgi) {
    conn->body_buffer->expect(conn->uwsgi_body_left);
  } else if (auto cl = conn->parser.content_length()) {
    conn->body_buffer->expect(*cl);
  }
  conn->body_started = conn->body_progress = now_seconds();
  switch (take_body(conn)) {
    case BodyStep::kDone:
      conn->core = core;  // the core that routed it serves it now, as any pipelined request
      return admit_route(conn);
    case BodyStep::kFailed:
      return HeadRoute::kAnswered;
    case BodyStep::kMore:
      break;
  }
  if (conn->peer_closed) {  // EOF came while a core had the connection: the rest never will
    close_connection(conn);
    return HeadRoute::kAnswered;
  }
  // RFC 9110 10.1.1: a client that waits for "100 Continue" sends nothing until it gets it.
  // Best effort, as for error responses: the socket's send buffer is empty between requests,
  // and a client that gets no answer sends after its own timeout anyway.
  if (!conn->uwsgi && conn->parser.expect_continue()) {
    static char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    iovec iov{kContinue, sizeof kContinue - 1};
    (void)transport_send(*conn, &iov, 1);
  }
  conn->state = ConnState::kBuffering;
  set_reader(conn, true);
  if (!conn->reader_registered) {
    close_connection(conn);
    return HeadRoute::kAnswered;
  }
  return HeadRoute::kBuffering;
}

Server::BodyStep Server::take_body(Connection* conn) noexcept {
  BodyBuffer& buffer = *conn->body_buffer;
  Status stored;
  if (conn->uwsgi) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(conn->buffered(), conn->uwsgi_body_left));
    if (n > 0) {
      stored = buffer.append(conn->data(), n);
      conn->consume(n);
      conn->uwsgi_body_left -= n;
    }
  } else {
    RequestParser& p = conn->parser;
    // The worker's only thread: one scratch string serves every connection.
    static std::string decoded;
    while (stored.ok() && conn->buffered() > 0 && !p.message_complete()) {
      decoded.clear();
      size_t consumed = 0;
      auto r = p.feed_body(conn->data(), conn->buffered(), &consumed, &decoded);
      conn->consume(consumed);
      if (r == RequestParser::Result::kError) {
        spdlog::debug("bad request body from {}: {} {}", conn->remote_addr, p.error_status(),
                      p.error_reason());
        send_error_and_linger(conn, p.error_status());
        return BodyStep::kFailed;
      }
      stored = buffer.append(decoded.data(), decoded.size());
      if (consumed == 0) break;
    }
  }
  if (!stored.ok()) {
    // The disk is full or temp_dir unusable: this request fails, the worker serves on.
    spdlog::error("buffering the request body of {} {} from {} (503): {}", head_method(*conn),
                  head_target(*conn), conn->remote_addr, stored.message());
    conn->body_buffer.reset();
    send_error_and_linger(conn, 503);
    return BodyStep::kFailed;
  }
  const bool done = conn->uwsgi ? conn->uwsgi_body_left == 0 : conn->parser.message_complete();
  return done ? BodyStep::kDone : BodyStep::kMore;
}

void Server::read_body(Connection* conn) noexcept {
  for (int i = 0; i < kBodyReadsPerWake; ++i) {
    ssize_t n = conn->fill();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for_write(*conn, false)) watch_writable(conn);  // TLS: see read_head
      return;
    }
    if (n <= 0) {
      spdlog::debug("{} went away after {} bytes of the body of {} {}", conn->remote_addr,
                    conn->body_buffer->size(), head_method(*conn), head_target(*conn));
      close_connection(conn);
      return;
    }
    conn->body_progress = now_seconds();
    switch (take_body(conn)) {
      case BodyStep::kMore:
        continue;
      case BodyStep::kFailed:
        return;
      case BodyStep::kDone:
        if (admit_route(conn) == HeadRoute::kAdmitted) dispatch(conn);
        return;
    }
  }
}

bool Server::body_expired(const Connection& conn, double now) const noexcept {
  // The rules a core applies while the app reads the body (RequestBody::fill): body_timeout
  // plus a second per KiB received, and at most Core::kSocketTimeout without a byte. Here
  // the server is waiting all along, so all the time since the head counts.
  BodyDeadline deadline;
  deadline.add_wait(now - conn.body_started);
  const uint64_t received = conn.body_buffer ? conn.body_buffer->size() : 0;
  return deadline.remaining(config().limits.body_timeout, received) <= 0 ||
         now - conn.body_progress >= Core::kSocketTimeout;
}

HeadRoute Server::admit_route(Connection* conn) noexcept {
  if (!admit(conn)) {
    if (conn->core != nullptr) (void)conn->core->writer().flush_held();
    conn->core = nullptr;
    close_connection(conn);
    return HeadRoute::kAnswered;
  }
  return HeadRoute::kAdmitted;
}

std::string_view Server::head_method(const Connection& conn) noexcept {
  if (conn.uwsgi) return conn.uwsgi->find("REQUEST_METHOD").value_or("GET");
  return conn.parser.method();
}

std::string_view Server::head_target(const Connection& conn) noexcept {
  if (conn.uwsgi) return conn.uwsgi->find("REQUEST_URI").value_or("/");
  return conn.parser.target();
}

}  // namespace aiowsgi::worker
