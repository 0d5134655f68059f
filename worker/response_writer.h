// ResponseWriter: the response side of the request a core serves. Holds what start_response
// was given, frames the body (Content-Length, chunked, or close-delimited), and sends head and
// body on the connection, suspending only its core while the socket is full. One per Core, a
// member of it, reset per request. Workers only; runs with the GIL held, inside the core.
//
// The buffers a response is assembled in (ResponseBuffers) are not the writer's own: they
// come from the worker's pool when the response starts and go back when the request ends.
// A request suspended before it answers, or a websocket once its handshake is sent, holds
// none: thousands of held requests would otherwise each keep ~300 bytes and the capacity
// their core's previous responses grew.
#pragma once

#include <Python.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "worker/io_result.h"
#include "worker/protocol/response_head.h"

namespace aiowsgi::worker {

class Core;
struct Connection;

// The canned response for a request the server rejects before (or instead of) any app
// response: "HTTP/1.1 <status> <reason>", |date| (the server's cached "Date: ...\r\n" line,
// the one app responses carry: RFC 9110 6.6.1 asks an origin server with a clock for it), a
// short text body, Connection: close.
// |added|: [server] add_header's preformatted fields ("" for none).
std::string error_response(int status, std::string_view date, std::string_view added);

// What a response is assembled in; pooled by the worker (response_writer.cpp).
struct ResponseBuffers {
  // What start_response was given, validated and copied: the app may change or reuse its
  // list afterwards. Valid while the writer's headers_set().
  ResponseHead head;
  std::string out;      // response head (and small bodies) being assembled
  std::string sending;  // held responses in flight in send_all (taken from the connection)
};

class ResponseWriter {
 public:
  explicit ResponseWriter(Core* core) : core_(core) {}
  ~ResponseWriter() { release_buffers(); }
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  // A new request: nothing set or sent. |head_request|: HEAD, no body bytes on the wire;
  // |keep_alive|: the connection may serve another request if the response allows it.
  void begin(bool head_request, bool keep_alive) {
    head_request_ = head_request;
    keep_alive_ = keep_alive;
    status_code_ = 0;
    headers_set_ = headers_sent_ = chunked_ = false;
    has_content_length_ = false;
    content_length_ = body_sent_ = 0;
    error_status_ = 0;
    no_body_status_ = false;
  }

  // start_response(status, headers, exc_info): validates and copies the head (the app may
  // change or reuse its objects afterwards). False with a Python exception set.
  bool start_response(PyObject* status, PyObject* headers, PyObject* exc_info) noexcept;
  // write() and each item of the response iterable: the head first if not sent yet, then
  // |len| bytes framed per the response (truncated to a declared Content-Length). False when
  // the client is gone or the request was cancelled; no Python exception is set either way.
  bool write_body(const char* data, size_t len) noexcept;
  // Ends the body: the head if nothing was written, the last chunk. kClose when the app sent
  // less than its Content-Length or on a send failure.
  IoResult finish_body() noexcept;
  // Sends the response for what the app returned: a list of bytes in one go, a
  // wsgi.file_wrapper with sendfile, anything else by iteration. kPythonError only when the
  // request was cancelled while the app's iterable raised.
  IoResult respond_from_result(PyObject* result) noexcept;
  // Sends error_response(status) (head not sent yet) and marks the connection for closing.
  bool send_simple_error(int status) noexcept;
  // Sends every byte of |iov| as it is, suspending the core while the socket is full. False
  // when the client is gone, on timeout or cancellation (the connection must close).
  // Responses held for the connection (Connection::held_out, pipelining) go first, in the
  // same sendmsg.
  bool send_all(iovec* iov, int iovcnt) noexcept;
  // Sends the responses held for the connection, if any (send_all with nothing more).
  bool flush_held() noexcept { return send_all(nullptr, 0); }

  bool headers_set() const { return headers_set_; }
  bool headers_sent() const { return headers_sent_; }
  bool keep_alive() const { return keep_alive_; }
  void set_close() { keep_alive_ = false; }
  // The app took the connection over (websocket): no HTTP response, and it closes after.
  void set_raw() {
    headers_sent_ = true;
    keep_alive_ = false;
  }
  int status_code() const { return status_code_; }
  int error_status() const { return error_status_; }
  void set_error_status(int status) { error_status_ = status; }
  // Gives the buffers back to the worker's pool (nothing is in flight: between requests, or
  // once a websocket's handshake is sent). The next use takes them again.
  void release_buffers() noexcept;

 private:
  // The buffers, taken from the pool on first use in a request.
  ResponseBuffers& buffers() noexcept;
  bool build_head(int64_t known_length) noexcept;
  bool send_file(int fd, off_t offset, uint64_t count) noexcept;
  IoResult iterate_result(PyObject* result) noexcept;
  // The small complete response in out_: held in the connection's output when another
  // pipelined request is already buffered (one write for the batch), else sent.
  bool hold_or_send() noexcept;
  // send_all without the held responses.
  bool send_iov(Connection* conn, iovec* iov, int iovcnt) noexcept;

  // Bytes of responses held for one write at most; past that they go out at once.
  static constexpr size_t kMaxHeldBytes = 64 * 1024;
  // send_all joins the held responses to the largest iovec it is given (a list response).
  static constexpr int kJoinedIov = 68;

  Core* core_;
  ResponseBuffers* buf_ = nullptr;  // from the pool while this request uses them
  int status_code_ = 0;
  bool headers_set_ = false;
  bool headers_sent_ = false;
  bool chunked_ = false;         // response uses chunked framing
  bool keep_alive_ = false;      // connection may serve another request afterwards
  bool head_request_ = false;    // HEAD: no body bytes on the wire
  bool no_body_status_ = false;  // 1xx/204/304
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;  // declared by the app (or by the server for a known length)
  uint64_t body_sent_ = 0;
  int error_status_ = 0;  // a status to answer with instead of 500 (e.g. 413 from wsgi.input)
};

}  // namespace aiowsgi::worker
