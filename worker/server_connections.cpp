// Server, connection lifecycle: a connection accepted (adopt), its request heads read and
// parsed on the loop, admitted against max_requests, handed to a core (or queued for one),
// given back for keep-alive, lingering after an error response, closed. Workers only; the
// loop's greenlet, GIL held.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/url_prefix.h"
#include "worker/control_link.h"
#include "worker/protocol/forwarded.h"
#include "worker/protocol/proxy_protocol.h"
#include "worker/protocol/request_target.h"
#include "worker/protocol/websocket.h"
#include "worker/python/python_module.h"
#include "worker/response_writer.h"
#include "worker/server.h"
#include "worker/static_files.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

constexpr double kLingerSeconds = 2.0;
// Bytes a connection may buffer ahead of the request its core is serving (pipelining)
// before the loop stops reading it.
constexpr size_t kMaxReadAhead = 256 * 1024;

}  // namespace

void Server::adopt(int fd, const sockaddr_storage& peer, size_t listener) noexcept {
  std::string addr, port;
  if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char host[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET) {
      auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      port = std::to_string(ntohs(a->sin_port));
    } else {
      auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      port = std::to_string(ntohs(a->sin6_port));
    }
    addr = host;
  }
  const auto& lim = config().limits;
  RequestParser::Limits limits;
  limits.max_header_bytes = static_cast<size_t>(lim.max_header_bytes);
  limits.max_body_bytes = static_cast<uint64_t>(lim.max_body_bytes);
  limits.max_header_fields = static_cast<size_t>(lim.max_header_fields);
  if (conns_.size() <= static_cast<size_t>(fd)) conns_.resize(static_cast<size_t>(fd) + 1);
  conns_[fd] = std::make_unique<Connection>(fd, limits);
  Connection* c = conns_[fd].get();
  ++open_connections_;
  acceptor_.set_connections(open_connections_);
  c->listener = listener;
  c->reserved = budget_.reserve();  // the acceptor checked has_room()
  if (ctx_.sockets[listener].uwsgi) {
    UwsgiParser::Limits ul;
    ul.max_header_bytes = limits.max_header_bytes;
    ul.max_body_bytes = limits.max_body_bytes;
    ul.max_header_fields = limits.max_header_fields;
    c->uwsgi = std::make_unique<UwsgiParser>(ul);
  }
  if (ctx_.sockets[listener].tls) {
    // The handshake runs in read_head, as the ClientHello arrives: it holds no core, and
    // header_timeout bounds it like a slow head.
    c->tls = tls_ctx_ ? TlsSession::accept(tls_ctx_.get(), fd) : nullptr;
    if (!c->tls) {
      spdlog::error("TLS: cannot start a session for a connection; closed");
      close_connection(c);
      return;
    }
  }
  c->remote_addr = std::move(addr);
  c->remote_port = std::move(port);
  // A unix socket's peer is local and reached it through the socket file's permissions, as
  // gunicorn trusts it too; a TCP peer must be listed.
  const bool tcp = peer.ss_family == AF_INET || peer.ss_family == AF_INET6;
  c->trusted_peer = !tcp || trusted_proxies_.contains(std::string_view(c->remote_addr));
  if (config().server.proxy_protocol) {
    if (!c->trusted_peer) {
      // Anyone could claim any address in a PROXY header: only listed balancers may speak.
      spdlog::debug("PROXY protocol: {} is not in forwarded_allow_ips, connection closed",
                    c->remote_addr);
      close_connection(c);
      return;
    }
    c->proxy_header_pending = true;
  }
  c->deadline = now_seconds() + config().limits.header_timeout;
  set_reader(c, true);
  if (!c->reader_registered) close_connection(c);
}

// With a [static] map, a worker keeps accepting while its cores are busy: a static request
// needs no core and must not wait for one. App requests that arrive meanwhile wait in this
// worker's queue for a core, as requests on its keep-alive connections already do.
bool Server::cores_full() const noexcept {
  return busy_cores_ >= static_cast<size_t>(config().server.cores) && !statics_;
}

void Server::set_reader(Connection* conn, bool on) noexcept {
  if (conn->reader_registered == on) return;
  int fd = conn->fd.get();
  if (on ? readiness_.add(fd) : readiness_.remove(fd)) {
    conn->reader_registered = on;
  } else {
    spdlog::error("{} connection fd {}: {}", on ? "watching" : "unwatching", fd, strerror(errno));
  }
}

void Server::on_poll() noexcept {
  int n = readiness_.wait();
  if (n < 0) {
    spdlog::error("epoll_wait on the connections: {}", strerror(errno));
    return;
  }
  // An entry may be stale by the time it is reached (an earlier one closed its connection):
  // on_readable checks that a connection still has the number, and a spurious read of a
  // live one finds nothing (EAGAIN).
  for (int i = 0; i < n; ++i) on_readable(readiness_.ready_fd(i));
}

bool Server::watch_readable(Connection* conn) noexcept {
  set_reader(conn, true);
  return conn->reader_registered;
}

bool Server::watch_writable(Connection* conn) noexcept {
  PyRef fd = PyRef::steal(PyLong_FromLong(conn->fd.get()));
  if (!fd) {
    PyErr_Clear();
    return false;
  }
  return call_logged(calls_.add_writer.get(), "add_writer", fd.get(), on_writable_fn_.get(),
                     fd.get());
}

void Server::unwatch_writable(Connection* conn) noexcept {
  PyRef fd = PyRef::steal(PyLong_FromLong(conn->fd.get()));
  if (fd) call_logged(calls_.remove_writer.get(), "remove_writer", fd.get());
}

void Server::on_readable(int fd) noexcept {
  if (fd < 0 || static_cast<size_t>(fd) >= conns_.size() || !conns_[fd]) return;
  Connection* conn = conns_[fd].get();
  switch (conn->state) {
    case ConnState::kReadingHead:
      read_head(conn);
      return;
    case ConnState::kBuffering:
      read_body(conn);
      return;
    case ConnState::kInCore:
      if (conn->core != nullptr && conn->core->state() == CoreState::kWaitRead) {
        conn->core->wake(WakeReason::kReady);
        return;
      }
      [[fallthrough]];
    case ConnState::kQueued:
    case ConnState::kStatic: {
      // The client sends while its request is served (pipelining) or goes away. Buffer a
      // bounded amount; past that, or at EOF, stop watching until the core is done.
      if (conn->buffered() < kMaxReadAhead && !conn->peer_closed) {
        ssize_t n = conn->fill();
        if (n > 0) return;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        conn->peer_closed = true;
      }
      set_reader(conn, false);
      // A request waiting in aiowsgi.await_() for work its client no longer wants gives up.
      if (conn->peer_closed && conn->core != nullptr && notify_client_gone(conn->core->id()))
        conn->core->mark_disconnect_cancelled();
      return;
    }
    case ConnState::kLingering: {
      char sink[16384];
      ssize_t n = recv(fd, sink, sizeof sink, 0);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
      close_connection(conn);
      return;
    }
  }
}

void Server::read_head(Connection* conn) noexcept {
  ssize_t n = conn->fill();
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      // TLS has a handshake message to send into a full socket: on_writable comes back here.
      if (n < 0 && errno == EAGAIN && wait_for_write(*conn, false)) watch_writable(conn);
      return;
    }
    close_connection(conn);  // EOF or reset between requests: nothing to answer
    return;
  }
  if (!conn->head_started) {
    conn->head_started = true;
    conn->deadline = now_seconds() + config().limits.header_timeout;
  }
  process_head(conn);
}

bool Server::take_proxy_header(Connection* conn) noexcept {
  ProxyHeader h;
  size_t consumed = 0;
  std::string_view reason;
  switch (parse_proxy_header(conn->data(), conn->buffered(), &consumed, &h, &reason)) {
    case ProxyParse::kIncomplete:
      return false;
    case ProxyParse::kError:
      spdlog::debug("PROXY protocol from {}: {}, connection closed", conn->remote_addr, reason);
      close_connection(conn);
      return false;
    case ProxyParse::kDone:
      break;
  }
  conn->consume(consumed);
  conn->proxy_header_pending = false;
  if (h.keeps_peer) return true;  // LOCAL (the balancer's own health check): the peer stays
  conn->remote_addr = h.source.text();
  conn->remote_port = std::to_string(h.source_port);
  // The client is now the peer: its own X-Forwarded-* headers count only if it is trusted.
  conn->trusted_peer = trusted_proxies_.contains(h.source);
  return true;
}

bool Server::outside_mount(const Connection& conn) const noexcept {
  if (mount_.empty() || conn.uwsgi) return false;
  std::string_view path = conn.parser.path();
  std::string decoded;
  if (path.find('%') != std::string_view::npos) {
    percent_decode(path, &decoded);
    path = decoded;
  }
  if (under_prefix(path, mount_)) return false;
  if (!conn.trusted_peer) return true;
  // A trusted proxy that names a prefix itself moves the app there (build_environ uses it).
  std::string p;
  const ForwardedFields f = forwarded_fields(conn.parser);
  return f.x_prefix.empty() || !normalize_prefix(f.x_prefix, &p);
}

void Server::process_head(Connection* conn) noexcept {
  if (conn->proxy_header_pending && (!take_proxy_header(conn) || conn->buffered() == 0)) return;
  if (route_head(conn) == HeadRoute::kAdmitted) dispatch(conn);
}

HeadRoute Server::route_head(Connection* conn) noexcept {
  size_t consumed = 0;
  int error_status = 0;
  if (conn->uwsgi) {
    auto u = conn->uwsgi->feed(conn->data(), conn->buffered(), &consumed);
    conn->consume(consumed);
    if (u == UwsgiParser::Result::kIncomplete) return HeadRoute::kIncomplete;
    if (u == UwsgiParser::Result::kError) {
      spdlog::debug("bad uwsgi packet from {}: {} {}", conn->remote_addr,
                    conn->uwsgi->error_status(), conn->uwsgi->error_reason());
      error_status = conn->uwsgi->error_status();
    } else {
      conn->uwsgi_body_left = conn->uwsgi->content_length().value_or(0);
    }
  } else {
    auto r = conn->parser.feed_head(conn->data(), conn->buffered(), &consumed);
    conn->consume(consumed);
    if (r == RequestParser::Result::kIncomplete) return HeadRoute::kIncomplete;
    if (r == RequestParser::Result::kError) {
      spdlog::debug("bad request from {}: {} {}", conn->remote_addr, conn->parser.error_status(),
                    conn->parser.error_reason());
      error_status = conn->parser.error_status();
    } else {
      conn->forwarded_client.clear();  // a proxy's connection carries many clients' requests
    }
  }
  conn->body_buffer.reset();  // the last request's, if it was buffered
  // A pipelined request answered here, or leaving its core, must not pass the answers its core
  // holds for the batch (worker/held_output.cpp): they go first. Only a plain app request,
  // served next by the same core, lets them wait for its own response.
  if (!conn->held_out.empty() && conn->core != nullptr &&
      (error_status != 0 || statics_ || !mount_.empty() || wants_buffering(*conn)))
    (void)conn->core->writer().flush_held();
  if (error_status == 0 && serve_static(conn)) return HeadRoute::kAnswered;
  if (error_status == 0 && outside_mount(*conn)) error_status = 404;
  if (error_status != 0) {
    conn->core = nullptr;  // a pipelined request of a core's connection leaves the core
    send_error_and_linger(conn, error_status);
    return HeadRoute::kAnswered;
  }
  // The body first, then max_requests: a request the client never finishes sending is not
  // counted.
  if (wants_buffering(*conn)) return start_buffering(conn);
  return admit_route(conn);
}

// --- max_requests: the request budget (worker/request_budget.h) ------------------------------

bool Server::admit(Connection* conn) noexcept {
  bool ok = budget_.admit(conn->reserved);
  conn->reserved = false;
  if (!ok) {
    // Unreachable while every connection that can bring a request holds a reservation; if
    // it happens, closing unanswered is what a client retrying on a reused connection expects.
    spdlog::warn("max_requests: a request from {} arrived past the limit; closing its connection",
                 conn->remote_addr);
    return false;
  }
  if (budget_.spent()) retire();
  return true;
}

bool Server::keep_alive_allowed(Connection* conn) noexcept {
  if (draining_ || retiring_) return false;
  if (conn->reserved) return true;
  conn->reserved = budget_.reserve();
  return conn->reserved;
}

void Server::unreserve(Connection* conn) noexcept {
  if (!conn->reserved) return;
  conn->reserved = false;
  budget_.release();
  // A place came free: this worker may accept again.
  if (!acceptor_.accepting()) acceptor_.resume();
}

void Server::retire() noexcept {
  if (retiring_) return;
  retiring_ = true;
  acceptor_.pause();
  spdlog::info(
      "max_requests {} reached: no more requests taken on; finishing {} in flight, then exiting",
      config().limits.max_requests, busy_cores_ + queue_.size());
  ControlLink::retiring(ctx_.control_fd, ctx_.worker_id, budget_.admitted());
  close_websockets(websocket::kCloseServiceRestart);  // a replacement takes their clients
  maybe_finish_drain();
}

// --- Cores: handed out to admitted requests, taken back when idle ----------------------------

void Server::dispatch(Connection* conn) noexcept {
  Core* core = take_free_core();
  if (core == nullptr) {
    conn->state = ConnState::kQueued;
    queue_.push_back(conn);
    return;
  }
  ++busy_cores_;
  if (cores_full()) acceptor_.pause();
  // Nothing read ahead: the request may stay suspended for long, and thousands of them at
  // once should hold no read buffer each (the next head, if any, gets a new one).
  if (conn->buffered() == 0) conn->release_buffer();
  if (!core->start(conn)) {
    spdlog::error("could not start a core: {}", fetch_exception_text());
    --busy_cores_;
    free_cores_.push_back(core);
    send_error_and_linger(conn, 503);
  }
}

Core* Server::take_free_core() noexcept {
  if (!free_cores_.empty()) {
    Core* c = free_cores_.back();
    free_cores_.pop_back();
    return c;
  }
  if (cores_.size() < static_cast<size_t>(config().server.cores)) {
    cores_.push_back(std::make_unique<Core>(this, static_cast<int>(cores_.size())));
    return cores_.back().get();
  }
  return nullptr;
}

Connection* Server::next_request(Core* core, Connection* conn, bool keep) noexcept {
  if (!keep) {
    release_connection(conn, false);
  } else {
    // A pipelined request may already be buffered: the core serves it right away, in order.
    // Anything else it may be (a static file, an error, a request over max_requests, a body
    // to read whole on the loop) is answered on the loop, and the core moves on.
    conn->parser.reset();
    HeadRoute route = conn->buffered() > 0 ? route_head(conn) : HeadRoute::kIncomplete;
    if (route == HeadRoute::kAdmitted) return conn;
    if (route == HeadRoute::kIncomplete) release_connection(conn, true);
  }
  if (queue_.empty()) return nullptr;
  Connection* next = queue_.front();
  queue_.pop_front();
  next->core = core;
  next->state = ConnState::kInCore;
  return next;
}

void Server::core_idle(Core* core) noexcept {
  free_cores_.push_back(core);
  --busy_cores_;
  acceptor_.resume();
  if (draining_ || retiring_) maybe_finish_drain();
}

// --- After a request: keep-alive or close ----------------------------------------------------

void Server::release_connection(Connection* conn, bool keep_alive) noexcept {
  // Cores send what they held before they let go (Core::serve); this is the safety net.
  if (!conn->held_out.empty()) send_held_now(conn);
  conn->core = nullptr;
  conn->body_buffer.reset();  // memory or a temporary file: not kept by an idle connection
  // A connection left open must be able to bring its next request (max_requests).
  if (conn->upgraded && !conn->peer_closed) {
    // RFC 6455 7.1.1: after the close frames the server closes TCP first. Lingering lets
    // the client's close frame (and what it sent before) arrive without the kernel answering
    // with a reset, which may discard our close frame at the client.
    forget_app_watchers(conn);
    linger_close(conn);
    return;
  }
  if (!keep_alive || conn->peer_closed || draining_ || !keep_alive_allowed(conn)) {
    close_connection(conn);
    return;
  }
  conn->state = ConnState::kReadingHead;
  // The next head may have started already: bytes still buffered, or a part that arrived
  // with the last request and went into the parser (Core::serve feeds it there). Either way
  // the client is sending a request, so header_timeout applies and expiry answers 408.
  conn->head_started = conn->buffered() > 0 || conn->parser.head_started();
  conn->deadline = now_seconds() + (conn->head_started ? config().limits.header_timeout
                                                       : config().limits.keepalive_timeout);
  set_reader(conn, true);
}

void Server::resume_reading(Connection* conn) noexcept {
  int fd = conn->fd.get();
  release_connection(conn, true);
  // release_connection may have closed it (draining, client gone).
  if (static_cast<size_t>(fd) < conns_.size() && conns_[fd].get() == conn &&
      conn->state == ConnState::kReadingHead && conn->buffered() > 0)
    process_head(conn);
}

void Server::send_error_and_linger(Connection* conn, int status) noexcept {
  std::string resp = error_response(status, date_header(), added_headers());
  // Best effort, non-blocking: the response is small and the socket buffer is empty.
  iovec iov{resp.data(), resp.size()};
  (void)transport_send(*conn, &iov, 1);
  linger_close(conn);
}

// Shuts the write side and drains input for a moment, so that unread request bytes do not
// make the kernel answer with a reset that would discard the response.
void Server::linger_close(Connection* conn) noexcept {
  if (conn->tls) conn->tls->close_notify();
  ::shutdown(conn->fd.get(), SHUT_WR);
  unreserve(conn);  // no request is read from it any more
  conn->state = ConnState::kLingering;
  conn->deadline = now_seconds() + kLingerSeconds;
  conn->rbuf.clear();
  conn->rpos = 0;
  set_reader(conn, true);
}

void Server::close_connection(Connection* conn) noexcept {
  int fd = conn->fd.get();
  // Out of the ReadinessSet first, whatever else watched the fd: closing does not end the
  // registration while the socket lives on in a duplicate (an app that kept
  // os.dup(uwsgi.connection_fd())), and a registration left behind would report the
  // socket ready on every loop turn, for good.
  if (conn->reader_registered) set_reader(conn, false);
  conn->reader_registered = false;
  forget_app_watchers(conn);
  forget_held(conn);
  if (conn->static_send && statics_) statics_->forget(conn);
  if (conn->reserved) {
    conn->reserved = false;
    budget_.release();
  }
  if (conn->state == ConnState::kQueued) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == conn) {
        queue_.erase(it);
        break;
      }
    }
  }
  if (conn->tls && !conn->peer_closed) conn->tls->close_notify();
  conns_[fd].reset();  // closes fd: every watcher on it is gone (above)
  --open_connections_;
  acceptor_.set_connections(open_connections_);
  if (!acceptor_.accepting()) acceptor_.resume();
  if (draining_ || retiring_) maybe_finish_drain();
}

void Server::forget_app_watchers(Connection* conn) noexcept {
  if (!conn->upgraded) return;
  // The app may have left its own reader or writer on the fd: asyncio must forget them
  // before the number is reused, or its next registration would fail.
  PyRef fdo = PyRef::steal(PyLong_FromLong(conn->fd.get()));
  if (fdo) {
    call_logged(calls_.remove_reader.get(), "remove_reader", fdo.get());
    call_logged(calls_.remove_writer.get(), "remove_writer", fdo.get());
  }
}

void Server::on_writable(int fd) noexcept {
  if (fd < 0 || static_cast<size_t>(fd) >= conns_.size() || !conns_[fd]) return;
  Connection* conn = conns_[fd].get();
  if (conn->state == ConnState::kStatic && statics_) {
    statics_->on_writable(conn);
  } else if (conn->core != nullptr && conn->core->state() == CoreState::kWaitWrite) {
    conn->core->wake(WakeReason::kReady);
  } else if (conn->tls &&
             (conn->state == ConnState::kReadingHead || conn->state == ConnState::kBuffering)) {
    unwatch_writable(conn);  // the handshake's bytes can go now: read on (read_head)
    on_readable(fd);
  } else {
    if (!conn->held_out.empty()) send_held_now(conn);  // re-watches while bytes are left
    if (conn->held_out.empty()) unwatch_writable(conn);
  }
}

}  // namespace aiowsgi::worker
