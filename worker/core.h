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
#include "worker/python/py_ref.h"
#include "worker/python/request_host.h"
#include "worker/python/thread_identity.h"
#include "worker/request_body.h"
#include "worker/response_writer.h"

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

// Implements RequestHost: the view worker/python/ has of the request (final, so the engine's
// own calls stay direct).
class Core final : public RequestHost {
 public:
  // Seconds a core may wait for its client to send or accept bytes before the request fails.
  static constexpr double kSocketTimeout = 60;

  Core(Server* server, int id);
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  ~Core();

  int id() const override { return id_; }
  CoreState state() const { return state_; }
  double io_deadline() const { return io_deadline_; }
  Connection* connection() const { return conn_; }
  uint64_t requests() const { return requests_; }
  bool in_request() const override {
    return state_ == CoreState::kRunning || state_ == CoreState::kWaitRead ||
           state_ == CoreState::kWaitWrite;
  }
  PyObject* id_object() const override { return id_obj_.get(); }

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
  // SIGUSR2: the request this core serves and the Python stack it is suspended at (innermost
  // frame last), as a log message. On the loop's greenlet, for a core in_request(); |now| is
  // now_seconds(), for the request's age.
  std::string describe_stack(double now) const;
  // The client went away while the request waited in aiowsgi.await_(), which was cancelled.
  void mark_disconnect_cancelled() noexcept { disconnect_cancelled_ = true; }
  // Monotonic start time of the current request (valid while in_request()).
  double request_start() const { return request_start_; }

  // --- Raw connection access (protocol upgrades, the uwsgi module), inside the core --------
  // True when the running greenlet is this core's (not the loop's, not one the app made).
  bool on_own_greenlet() const noexcept override;
  int connection_fd() const override;
  bool headers_sent() const override { return writer_.headers_sent(); }
  // The app takes the connection over (a websocket handshake): after the app returns the
  // server writes no HTTP response and closes the connection. The server's own reader on the
  // fd is removed, so the app may add one (loop.add_reader(uwsgi.connection_fd(), ...)).
  void mark_upgraded() noexcept override;
  bool upgraded() const override { return upgraded_; }
  // Sends |len| bytes as they are (no HTTP framing), suspending only this core while the
  // socket is full. False when the client is gone or the request was cancelled (no Python
  // exception is set).
  bool send_raw(const char* data, size_t len) noexcept override;
  // Takes what the client sent: bytes already buffered first, then the socket. Appends to
  // *out. With |block|, suspends this core until bytes arrive or |timeout| seconds pass
  // (timeout <= 0: the default socket timeout). Returns the number of bytes appended (> 0),
  // 0 when none are available (non-blocking) or on timeout, -1 when the client closed the
  // connection, the request was cancelled, or on a socket error.
  ssize_t recv_raw(std::string* out, bool block, double timeout) noexcept override;

  // --- Used by wsgi.input (wsgi_input.cpp), inside the core -------------------------------
  // Makes decoded body bytes available in body() (from body_pos()); see BodyRead.
  BodyRead fill_body() noexcept override { return body_.fill(); }
  std::string& body() override { return body_.bytes(); }
  size_t& body_pos() override { return body_.pos(); }
  std::optional<uint64_t> buffered_body_length() const override { return body_.buffered_length(); }
  uint64_t body_tell() const override { return body_.tell(); }
  void body_seek(uint64_t offset) noexcept override { body_.seek(offset); }
  // A status to answer with instead of 500 if the app lets its exception out before sending
  // a head (400 for a refused websocket handshake, 408 for a body that never came).
  void set_error_status(int status) override { writer_.set_error_status(status); }
  // Changes when a request starts and when it ends: what the app holds of a request (write,
  // wsgi.input) is valid while its serial is the core's.
  uint64_t serial() const override { return serial_; }

  // --- The rest of RequestHost (worker/python/request_host.h) ------------------------------
  bool has_connection() const override { return conn_ != nullptr; }
  const RequestParser* http_head() const override;
  const UwsgiParser* uwsgi_head() const override;
  PyObject* environ_template() const override;
  PyObject* remote_addr() override;
  PyObject* remote_port() override;
  bool trusted_peer() const override;
  bool client_certificate(std::string_view* subject_dn, std::string_view* pem) override;
  const IpNetworks& trusted_proxies() const override;
  std::string_view mount() const override;
  void set_forwarded_client(std::string client) override;
  bool start_response(PyObject* status, PyObject* headers, PyObject* exc_info) noexcept override {
    return writer_.start_response(status, headers, exc_info);
  }
  bool headers_set() const override { return writer_.headers_set(); }
  bool write_body(const char* data, size_t len) noexcept override {
    return writer_.write_body(data, len);
  }
  bool client_gone() const override;
  void release_reader() noexcept override;

  // --- Used by the parts of a request (response_writer, request_body, python/) -------------
  Server* server() const { return server_; }
  ResponseWriter& writer() { return writer_; }
  // The write() callable of the current request (start_response returns it).
  PyObject* write_callable() const override { return write_.get(); }
  // The worker is killing this core's greenlet (shutdown): unwind, touch nothing.
  bool killed() const { return killed_; }
  // Suspends until the connection is readable/writable. False on timeout, cancellation,
  // shutdown or error. |timeout| <= 0: the default socket timeout. Inside the core only.
  bool wait_io(CoreState how, double timeout = 0) noexcept;
  // Why the last wait_io() ended.
  WakeReason wake_reason() const { return wake_; }
  // Logs the pending Python exception with the request it came from (quietly when it is
  // the consequence of the client going away), and clears it.
  void log_app_exception(const char* when) noexcept;

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
  // Switches from the loop's greenlet into this core's (throwing GreenletExit in with |kill|),
  // the core's thread identity in force while it runs. What the switch returned, or nullptr.
  PyObject* switch_in(bool kill) noexcept;
  // Switches from this core to the loop's greenlet, as the thread itself.
  PyObject* switch_out() noexcept;
  bool handle_request() noexcept;  // one request; false: the connection must close
  // handle_request's parts before and after the app's call, out of line (see core.cpp). The
  // environ, or nullptr once the client was answered 500; end_request takes what the app
  // returned (nullptr: it raised).
  [[gnu::noinline]] PyObject* begin_request() noexcept;
  [[gnu::noinline]] bool end_request(PyObject* result) noexcept;
  std::string_view method() const;  // of the current request, for logs
  std::string_view target() const;
  bool finish_cancelled() noexcept;

  Server* server_;
  int id_;
  PyRef greenlet_;
  std::shared_ptr<Lease> lease_;  // greenlet_'s
  ssize_t running_refs_ = 0;      // greenlet_'s reference count while it runs, app code aside
  bool entering_ = false;         // enter() is switching in: the one legitimate resume of a park
  bool retire_pending_ = false;   // the last request was aborted: retire before serving again
  bool disconnect_cancelled_ = false;  // its client went away while it waited in await_()
  RequestText last_request_;
  PyRef id_obj_;          // int, the core id (environ["aiowsgi.core"])
  PyRef start_response_;  // request_bound.h: reused while the app keeps no reference
  PyRef write_;
  // str of the last peer port this core served: reused while the next request's connection
  // is the same (keep-alive), so REMOTE_PORT costs no new object then (REMOTE_ADDR's str is
  // the worker's: Core::remote_addr). The Connection itself holds no Python object.
  PyRef remote_port_;
  CoreState state_ = CoreState::kFree;
  WakeReason wake_ = WakeReason::kNone;
  double io_deadline_ = 0;
  Connection* conn_ = nullptr;
  uint64_t requests_ = 0;
  uint64_t serial_ = 0;  // request counter; stale wsgi.input and write objects compare it
  bool killed_ = false;
  // Harakiri: the current request was cancelled. GreenletExit was thrown in: unwind without
  // touching the socket.
  bool cancelled_ = false;
  bool upgraded_ = false;     // the app took the connection over (websocket)
  double request_start_ = 0;  // monotonic start time of the current request

  // threading.get_ident(), current_thread() and threading.local inside this core.
  thread_identity::Identity identity_;
  ResponseWriter writer_{this};  // the response: head, framing, sending
  RequestBody body_{this};       // the request body, as wsgi.input reads it
};

}  // namespace aiowsgi::worker
