// Connection: one accepted client socket in a worker, from accept to close.
// Owned by the Server; lives on the loop's greenlet while it waits for a request head and is
// lent to one Core while a request on it is served. Workers only; touched with the GIL held.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/unique_fd.h"
#include "worker/body_buffer.h"
#include "worker/protocol/request_parser.h"
#include "worker/protocol/uwsgi_parser.h"
#include "worker/static_files.h"
#include "worker/tls_session.h"

namespace aiowsgi::worker {

class Core;

enum class ConnState {
  kReadingHead,  // on the loop: waiting for (the rest of) a request head
  kQueued,       // head complete, waiting for a free core
  kInCore,       // a core serves a request on it
  kLingering,    // error response sent, write side shut: discarding input until EOF or deadline
  kStatic,       // on the loop: a [static] file response is being sent (static_send)
  kBuffering,    // on the loop: head complete, its body read into body_buffer before a core
                 // is taken ([limits] buffer_body_bytes); then admitted and dispatched
};

struct Connection {
  // Takes ownership of |fd_in|.
  Connection(int fd_in, RequestParser::Limits limits) : fd(fd_in), parser(limits) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Closed with the Connection, which Server::close_connection destroys once nothing
  // watches it any more (the server's ReadinessSet, and an upgraded connection's app readers
  // on the asyncio loop, which must forget a number before it can be reused).
  UniqueFd fd;
  // An https:// listener's connection: its bytes go through TLS (worker/transport.h); null
  // on plain listeners. Declared after |fd|, so it goes first (it never closes the fd).
  std::unique_ptr<TlsSession> tls;
  ConnState state = ConnState::kReadingHead;
  RequestParser parser;
  // uwsgi-protocol connections (server.uwsgi_listen) parse their head with this instead of
  // |parser|; the body is the next uwsgi_body_left raw bytes. One request per connection.
  std::unique_ptr<UwsgiParser> uwsgi;
  uint64_t uwsgi_body_left = 0;
  std::string rbuf;  // raw bytes received and not yet parsed, from rpos on
  size_t rpos = 0;
  Core* core = nullptr;
  size_t listener = 0;             // index of the listen socket it came from
  bool reader_registered = false;  // fd is in the server's ReadinessSet
  bool head_started = false;       // bytes of the current head have arrived
  bool peer_closed = false;        // EOF seen while a core had it
  bool upgraded = false;           // taken over by the app (websocket): the app may own readers
  bool reserved = false;           // holds a max_requests reservation (Server::budget_)
  double deadline = 0;             // header/keep-alive/linger deadline (monotonic seconds)
  uint64_t requests = 0;
  // The peer as text, for its lifetime (or the PROXY header's); "" on a unix socket. Python's
  // str of it is the serving Core's business (Core::remote_addr), not the connection's.
  std::string remote_addr;
  std::string remote_port;
  // The peer is in [server] forwarded_allow_ips (or on a unix socket): its forwarding headers
  // are believed. With a PROXY header, judged again on the address the header gives.
  bool trusted_peer = false;
  bool proxy_header_pending = false;  // [server] proxy_protocol: the header has not come yet
  std::string forwarded_client;       // this request's client per a trusted proxy, or ""
  StaticSendPtr static_send;          // while kStatic
  // The current request's body, read whole before the app runs ([limits] buffer_body_bytes);
  // null when the app reads it from the socket. Filled while kBuffering, read by the core's
  // wsgi.input, dropped when the next head arrives or the connection goes back to the loop.
  std::unique_ptr<BodyBuffer> body_buffer;
  double body_started = 0;   // kBuffering: when the head was complete (body_timeout)
  double body_progress = 0;  // kBuffering: when body bytes last arrived
  // Complete responses to pipelined requests, held while the next request of the same batch
  // is already buffered, so that a batch leaves in one write (ResponseWriter). Sent before
  // any later byte of the connection; by the loop (Server::on_flush_held) if the core
  // suspends first. Only while kInCore.
  std::string held_out;
  bool held_listed = false;  // in the server's list for that flush

  size_t buffered() const { return rbuf.size() - rpos; }
  const char* data() const { return rbuf.data() + rpos; }
  // Drops consumed bytes once everything buffered has been parsed. A small capacity is
  // kept for the next head; a large one (a body went through) is given back, so that
  // thousands of idle or suspended connections hold no big buffers.
  void consume(size_t n) {
    rpos += n;
    if (rpos == rbuf.size()) {
      rbuf.clear();
      rpos = 0;
      if (rbuf.capacity() > kKeepCapacity) rbuf.shrink_to_fit();
    }
  }
  // Gives rbuf's memory back; only when nothing is buffered. For a connection about to wait
  // long (a suspended request, an idle websocket): thousands of them hold no buffer each, and
  // the next read makes one of the size it needs.
  void release_buffer() {
    std::string().swap(rbuf);
    rpos = 0;
  }
  // Reads what the socket has (at most 64 KiB, a little more over TLS) and appends it to rbuf,
  // through a per-process scratch buffer: a connection never owns more buffer than the bytes
  // it actually holds. Returns recv's result: > 0 bytes appended, 0 at EOF, -1 with errno set
  // (EAGAIN: wait as worker/transport.h wait_for_write says). In worker/transport.cpp.
  ssize_t fill() noexcept;

  static constexpr size_t kKeepCapacity = 4096;
};

}  // namespace aiowsgi::worker
