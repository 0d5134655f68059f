// Core: one reusable greenlet that serves requests in a worker, one at a time (a "core", as in
// uWSGI). The WSGI callable runs inside it and may suspend it (greenlet.getcurrent().parent
// .switch()) to let the asyncio loop run; server I/O on EAGAIN suspends only this core.
// Workers only; everything here runs with the GIL held, on the worker's single thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "worker/core_guard.h"
#include "worker/protocol/body_deadline.h"
#include "worker/protocol/response_head.h"
#include "worker/python/py_ref.h"

namespace aiowsgi::worker {

class Server;
struct Connection;

enum class CoreState {
  kFree,       // parked in the loop's free list, greenlet suspended at its idle point
  kRunning,    // serving; may be suspended by the app itself (we never switch into it then)
  kWaitRead,   // suspended by the server until its connection is readable
  kWaitWrite,  // suspended by the server until its connection is writable
  kSettling,   // between requests, work waiting: parked until the loop has looked at it
};

enum class WakeReason { kNone, kReady, kTimeout, kShutdown };

class Core {
 public:
  Core(Server* server, int id);
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  ~Core();

  int id() const { return id_; }
  CoreState state() const { return state_; }
  double io_deadline() const { return io_deadline_; }
  Connection* connection() const { return conn_; }
  uint64_t requests() const { return requests_; }
  bool in_request() const {
    return state_ == CoreState::kRunning || state_ == CoreState::kWaitRead ||
           state_ == CoreState::kWaitWrite;
  }
  PyObject* id_object() const { return id_obj_.get(); }

  // Called on the loop's greenlet: serve |conn| (its head is parsed) in this core. Returns
  // when the core finishes or suspends. Returns false if the greenlet could not be created.
  bool start(Connection* conn) noexcept;
  // Called on the loop's greenlet for a core in kSettling (the loop ran once since it parked):
  // resume it, in a fresh greenlet if anything but the core still refers to the old one.
  void settle() noexcept;
  // Called on the loop's greenlet for a core in kWaitRead/kWaitWrite: resume it.
  void wake(WakeReason why) noexcept;
  // Kills the greenlet (worker shutdown): the request is abandoned.
  void kill() noexcept;
  // Harakiri: cancels the request this (suspended) core serves by throwing GreenletExit into
  // it. The app unwinds; the client gets a 504 if no head was sent, else the connection is
  // closed. The core itself survives and serves the next request. |age|: for the log.
  void cancel(double age) noexcept;
  bool cancelling() const { return cancelled_; }
  // The client went away while the request waited in aiowsgi.await_(), which was cancelled.
  void mark_disconnect_cancelled() noexcept { disconnect_cancelled_ = true; }
  // Monotonic start time of the current request (valid while in_request()).
  double request_start() const { return request_start_; }

  // --- Raw connection access (protocol upgrades, the uwsgi module), inside the core --------
  // The core whose greenlet is running now, or nullptr (import time, a loop callback).
  static Core* current() noexcept;
  // True when the running greenlet is this core's (not the loop's, not one the app made).
  bool on_own_greenlet() const noexcept;
  int connection_fd() const;
  bool headers_sent() const { return headers_sent_; }
  // The app takes the connection over (a websocket handshake): after the app returns the
  // server writes no HTTP response and closes the connection. The server's own reader on the
  // fd is removed, so the app may add one (loop.add_reader(uwsgi.connection_fd(), ...)).
  void mark_upgraded() noexcept;
  bool upgraded() const { return upgraded_; }
  // Sends |len| bytes as they are (no HTTP framing), suspending only this core while the
  // socket is full. False when the client is gone or the request was cancelled (no Python
  // exception is set).
  bool send_raw(const char* data, size_t len) noexcept;
  // Takes what the client sent: bytes already buffered first, then the socket. Appends to
  // *out. With |block|, suspends this core until bytes arrive or |timeout| seconds pass
  // (timeout <= 0: the default socket timeout). Returns the number of bytes appended (> 0),
  // 0 when none are available (non-blocking) or on timeout, -1 when the client closed the
  // connection, the request was cancelled, or on a socket error.
  ssize_t recv_raw(std::string* out, bool block, double timeout) noexcept;

  // --- Used by wsgi.input (core.cpp and wsgi_input.cpp), inside the core -------------------
  // Makes decoded body bytes available in body_ (from body_pos_). Returns false at the end of
  // the body. Raises a Python OSError and returns false on a client error / timeout.
  bool fill_body(bool* error) noexcept;
  std::string& body() { return body_; }
  // A status to answer with instead of 500 if the app lets its exception out before sending
  // a head (400 for a refused websocket handshake, 408 for a body that never came).
  void set_error_status(int status) { error_status_ = status; }
  size_t& body_pos() { return body_pos_; }
  // Changes when a request starts and when it ends: what the app holds of a request (write,
  // wsgi.input) is valid while its serial is the core's.
  uint64_t serial() const { return serial_; }

  // Python-visible callables bound to one request of this core (request_bound.h).
  static PyObject* py_start_response(PyObject* self, PyObject* const* args, size_t nargsf,
                                     PyObject* kwnames) noexcept;
  static PyObject* py_write(PyObject* self, PyObject* const* args, size_t nargsf,
                            PyObject* kwnames) noexcept;
  // The greenlet's body (self: a capsule holding the Core).
  static PyObject* run(PyObject* self, PyObject* args) noexcept;

 private:
  // What a core's greenlet knows about itself, apart from the core: once retired, the greenlet
  // never touches the core again (the core serves on in a fresh greenlet).
  struct Lease {
    bool retired = false;
    int core_id = 0;
    std::string last_request;  // set when retired, for the stale wake-up warning
  };
  void serve(Lease& lease) noexcept;  // requests until the greenlet is killed or retired
  // Switches into the greenlet (a fresh one if there is none, or if anything but the core
  // refers to the parked one). On the loop's greenlet.
  bool enter() noexcept;
  // Parks the greenlet until enter() (|how|: kFree or kSettling). False when the greenlet must
  // end: the worker kills it, or it was retired.
  bool park(Lease& lease, CoreState how) noexcept;
  // This greenlet serves no more requests; whoever still refers to it finds it ending quietly.
  void retire(Lease& lease) noexcept;
  bool handle_request() noexcept;  // one request; false: the connection must close
  PyObject* build_environ() noexcept;
  PyObject* build_uwsgi_environ() noexcept;
  PyObject* environ_base() noexcept;
  std::string_view method() const;  // of the current request, for logs
  std::string_view target() const;
  bool finish_request_body() noexcept;
  bool finish_cancelled() noexcept;
  // Response.
  bool start_response_impl(PyObject* status, PyObject* headers, PyObject* exc_info) noexcept;
  bool build_head(int64_t known_length) noexcept;
  bool write_body(const char* data, size_t len) noexcept;  // framing per chunked_
  bool finish_body() noexcept;
  bool send_all(iovec* iov, int iovcnt) noexcept;
  bool send_file(int fd, off_t offset, uint64_t count) noexcept;
  bool send_simple_error(int status) noexcept;
  // Suspends until the connection is readable/writable. False on timeout, cancellation,
  // shutdown or error. |timeout| <= 0: the default socket timeout.
  bool wait_io(CoreState how, double timeout = 0) noexcept;
  bool respond_from_result(PyObject* result) noexcept;
  bool iterate_result(PyObject* result) noexcept;
  void log_app_exception(const char* when) noexcept;

  Server* server_;
  int id_;
  PyRef greenlet_;
  std::shared_ptr<Lease> lease_;  // greenlet_'s
  ssize_t running_refs_ = 0;      // greenlet_'s reference count while it runs, app code aside
  bool entering_ = false;         // enter() is switching in: the one legitimate resume of a park
  bool retire_pending_ = false;   // the last request was aborted: retire before serving again
  bool disconnect_cancelled_ = false;
  RequestText last_request_;
  PyRef id_obj_;          // int, the core id (environ["aiowsgi.core"])
  PyRef start_response_;  // request_bound.h: reused while the app keeps no reference
  PyRef write_;
  CoreState state_ = CoreState::kFree;
  WakeReason wake_ = WakeReason::kNone;
  double io_deadline_ = 0;
  Connection* conn_ = nullptr;
  uint64_t requests_ = 0;
  uint64_t serial_ = 0;
  bool killed_ = false;
  bool cancelled_ = false;
  bool upgraded_ = false;  // the app took the connection over (websocket)  // harakiri: the current
                           // request was cancelled
  double request_start_ = 0;  // GreenletExit was thrown in: unwind without touching the socket  //
                              // request counter; stale wsgi.input objects compare it

  // Per-request state (reset at the start of each request).
  std::string body_;  // decoded request body not yet read by the app, from body_pos_
  size_t body_pos_ = 0;
  BodyDeadline body_deadline_;  // [limits] body_timeout
  bool sent_continue_ = false;
  // What start_response was given, validated and copied: the app may change or reuse its
  // list afterwards. staged_ takes a new call and is swapped in only once all of it is valid.
  ResponseHead head_;
  ResponseHead staged_;
  int status_code_ = 0;
  bool headers_set_ = false;
  bool headers_sent_ = false;
  bool chunked_ = false;         // response uses chunked framing
  bool keep_alive_ = false;      // connection may serve another request afterwards
  bool head_request_ = false;    // HEAD: no body bytes on the wire
  bool no_body_status_ = false;  // 1xx/204/304
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;  // declared by the app
  uint64_t body_sent_ = 0;
  int error_status_ = 0;  // a status to answer with instead of 500 (e.g. 413 from wsgi.input)
  std::string out_;       // response head (and small bodies) being assembled
};

}  // namespace aiowsgi::worker
