// Server: the per-worker request engine. Watches the listen sockets and the client
// connections through the worker's asyncio loop, parses request heads on the loop's greenlet,
// and hands complete requests to a bounded set of reusable greenlet cores. One per worker
// process; every method runs on the worker's single thread with the GIL held.
#pragma once

#include <sys/socket.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/control.h"
#include "common/ip_networks.h"
#include "common/tls_context.h"
#include "config/config.h"
#include "worker/acceptor.h"
#include "worker/connection.h"
#include "worker/core.h"
#include "worker/python/py_ref.h"
#include "worker/readiness_set.h"
#include "worker/request_budget.h"
#include "worker/static_files.h"
#include "worker/worker.h"

namespace aiowsgi::worker {

// Monotonic seconds (coarse clock: cheap, ~4 ms resolution — enough for timeouts).
double now_seconds() noexcept;

// Calls a cached bound method of the loop with positional args; logs and clears a Python
// error (false then).
bool call_logged(PyObject* fn, const char* what, PyObject* a, PyObject* b = nullptr,
                 PyObject* c = nullptr) noexcept;

// Where a complete request head went (Server::route_head).
enum class HeadRoute {
  kIncomplete,  // more bytes are needed; nothing was answered
  kAnswered,    // answered without the app (static file, error) or closed: it left any core
  kAdmitted,    // a request for the app, counted against max_requests
  kBuffering,   // its body is being read on the loop first ([limits] buffer_body_bytes): it
                // left any core, and is admitted and dispatched once the body is complete
};

// The asyncio loop's methods the server calls, looked up once.
struct LoopCalls {
  PyRef add_reader, remove_reader, add_writer, remove_writer, call_later, call_soon, stop;
};

class Server {
 public:
  Server(const WorkerContext& ctx, PyObject* loop, PyObject* app);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // The one server of this worker process (set by the constructor).
  static Server* instance() { return instance_; }

  // Prepares the Python objects and starts watching the listen sockets. False with a Python
  // exception set on failure.
  bool start() noexcept;
  // Graceful stop: no new connections, idle keep-alive connections closed, in-flight requests
  // finish (up to graceful_timeout); then the loop is stopped. Websockets are told to close
  // (1012 for a restart, 1001 for a shutdown) and hold the worker only a moment longer.
  void drain(DrainReason reason) noexcept;
  // Immediate stop: the loop is stopped now.
  void stop_now() noexcept;
  // After the loop stopped: kills cores, closes every connection.
  void shutdown() noexcept;
  // SIGUSR2, once the loop runs again: logs every request in flight with the Python stack its
  // core is suspended at. The requests go on undisturbed.
  void log_stacks() noexcept;

  const config::Config& config() const { return *ctx_.config; }
  const WorkerContext& context() const { return ctx_; }
  PyObject* app() const { return app_.get(); }
  PyObject* loop() const { return loop_.get(); }
  PyObject* main_greenlet() const { return main_greenlet_.get(); }
  const LoopCalls& loop_calls() const { return calls_; }
  Acceptor& acceptor() { return acceptor_; }
  bool draining() const { return draining_; }
  bool stopping() const { return stopping_; }
  // max_requests reached: no more requests are taken on; exits once its connections are done.
  bool retiring() const { return retiring_; }
  const std::string& date_header() const { return date_header_; }  // "Date: ...\r\n"
  // [server] add_header as "Name: value\r\n" lines, built once; "" when none (no cost then).
  const std::string& added_headers() const { return added_headers_; }

  // --- Used by the acceptor ----------------------------------------------------------------
  // Takes on the accepted socket |fd| (non-blocking, close-on-exec) from |peer| on listen
  // socket |listener|: a new Connection waiting for its request head, or closed at once if
  // it cannot be watched.
  void adopt(int fd, const sockaddr_storage& peer, size_t listener) noexcept;
  size_t open_connections() const { return open_connections_; }
  const RequestBudget& budget() const { return budget_; }
  // Whether every core being busy stops this worker from accepting connections.
  bool cores_full() const noexcept;

  // --- Used by cores -----------------------------------------------------------------------
  // A core finished with its connection: hand it back to the loop (keep-alive) or close it.
  void release_connection(Connection* conn, bool keep_alive) noexcept;
  // A core finished a request on |conn| (|keep|: the response allows keep-alive). Returns
  // what the core serves next: |conn| again when its next request is already buffered and
  // admitted (pipelining, in order), else a queued connection, else nullptr. |conn| itself
  // goes back to the loop, is answered there (static file, error, body to buffer) or closes.
  Connection* next_request(Core* core, Connection* conn, bool keep) noexcept;
  // A core has nothing more to do: park it.
  void core_idle(Core* core) noexcept;
  // A core parked in kSettling gets Core::settle() once the loop has run (call_soon).
  void settle_later(Core* core) noexcept;
  // Keeps a retired core greenlet (one something besides its core may still switch into), so
  // that a stale wake-up finds it ending quietly; at most kMaxRetiredGreenlets of them.
  void keep_retired(PyRef greenlet) noexcept;
  // On the loop's greenlet: lets go of retired greenlets nothing else refers to, and ends the
  // oldest past the bound.
  void prune_retired() noexcept;
  // A core held a response in conn->held_out (pipelining, worker/held_output.cpp): the loop
  // sends it at its next turn if the core has not by then (the core suspended mid-batch).
  void note_held(Connection* conn) noexcept;
  // Sends what conn->held_out holds without blocking; keeps what the socket did not take
  // and watches for room. On the loop, or from a core that leaves it to the loop.
  void send_held_now(Connection* conn) noexcept;
  // The loop's turn after cores held responses (call_soon).
  void on_flush_held() noexcept;
  // conn closes: its held bytes and its place in that list go.
  void forget_held(Connection* conn) noexcept;
  // Registers/unregisters the writer callback for a core waiting to write.
  bool watch_writable(Connection* conn) noexcept;
  void unwatch_writable(Connection* conn) noexcept;
  // Makes sure the loop watches conn for readability (a core waits to read).
  bool watch_readable(Connection* conn) noexcept;
  // Stops the server's reader on conn (an upgraded connection's app may add its own).
  void unwatch_readable(Connection* conn) noexcept { set_reader(conn, false); }
  // The core with id |id|, or nullptr.
  Core* core(int id) const {
    return id >= 0 && static_cast<size_t>(id) < cores_.size() ? cores_[id].get() : nullptr;
  }
  // Environ pieces shared by all requests of a listener (copied per request).
  PyObject* environ_template(size_t listener) const { return templates_[listener].get(); }
  // [server] forwarded_allow_ips, parsed.
  const IpNetworks& trusted_proxies() const { return trusted_proxies_; }
  // The URL prefix the app is mounted at ([app] mount, else SCRIPT_NAME from the
  // environment), "/app" or "".
  std::string_view mount() const { return mount_; }
  // Answers |conn| with a canned error status and closes it after a short linger.
  void reject(Connection* conn, int status) noexcept { send_error_and_linger(conn, status); }
  // Shuts the write side of |conn| (its response is out), discards input for a moment, closes.
  void linger_close(Connection* conn) noexcept;
  // The one decision for a request head, the first of a connection or a pipelined one
  // (next_request): feeds the buffered bytes to the parser; once the head is complete answers
  // it on the loop (static file, parse error, outside the mount) or admits it for the app.
  HeadRoute route_head(Connection* conn) noexcept;
  // A response answered on the loop (static file) is done and |conn| stays open: wait for
  // its next request, or parse the one already buffered (pipelining). May close |conn|.
  void resume_reading(Connection* conn) noexcept;
  void count_request() { ++requests_; }
  // The response on |conn| is about to say whether the connection stays open: true when it
  // may (not draining, and the budget can still serve one more request on it).
  bool keep_alive_allowed(Connection* conn) noexcept;
  uint64_t exceptions = 0;      // app exceptions logged
  uint64_t tx_bytes = 0;        // response bytes sent
  uint64_t harakiri_count = 0;  // requests cancelled by harakiri
  uint64_t requests() const { return requests_; }

  // --- Loop callbacks (module-level C functions forward here) --------------------------------
  // The client connections' epoll set is readable: serves every ready connection of the batch.
  void on_poll() noexcept;
  void on_readable(int fd) noexcept;
  void on_writable(int fd) noexcept;
  void on_tick() noexcept;
  void on_control() noexcept;
  void on_settle(int core_id) noexcept;
  void on_goodbye() noexcept;  // close_websockets' work, on the loop's own turn

 private:
  bool build_templates() noexcept;
  bool load_tls() noexcept;  // [tls] into tls_ctx_ when a listener is https://; false: boot fails
  void settle_prefix_and_proxies() noexcept;
  // [server] proxy_protocol: consumes the PROXY header from |conn|'s buffer. False when the
  // connection was closed (bad header) or the header is not complete yet.
  bool take_proxy_header(Connection* conn) noexcept;
  // An HTTP request whose path lies outside the mount prefix (and no trusted proxy names
  // another prefix for it): answered 404 without the app.
  bool outside_mount(const Connection& conn) const noexcept;
  void read_head(Connection* conn) noexcept;
  void process_head(Connection* conn) noexcept;  // parses buffered bytes of a request head
  // Answers |conn|'s complete request head on the loop if its path is under a [static] map
  // prefix (the connection then leaves any core). False: a request for the app.
  bool serve_static(Connection* conn) noexcept { return statics_ && statics_->try_serve(conn); }
  // max_requests (worker/request_budget.h). A request head on |conn| is complete: take it on
  // (true) or not (false: over the limit; the caller closes the connection unanswered).
  bool admit(Connection* conn) noexcept;
  void dispatch(Connection* conn) noexcept;  // an admitted request: to a free core or queued
  // admit(), closing |conn| unanswered when it is refused (kAnswered then, else kAdmitted).
  HeadRoute admit_route(Connection* conn) noexcept;

  // --- Bodies read whole before the app runs (worker/body_buffering.cpp) -------------------
  // How far reading a body into the connection's BodyBuffer got.
  enum class BodyStep {
    kMore,    // everything received is stored; more is to come
    kDone,    // the body is complete
    kFailed,  // answered with an error (bad framing, 503 when it cannot be stored) or closed
  };
  // [limits] buffer_body_bytes is on and |conn|'s complete head announces a body.
  bool wants_buffering(const Connection& conn) const noexcept;
  // Starts reading |conn|'s body into a new BodyBuffer, taking what is already received, and
  // answers "100 Continue" when the client waits for it. kAdmitted when the body was all
  // there, kBuffering when the loop reads the rest (and dispatches it then), kAnswered when
  // the request failed or the connection closed.
  HeadRoute start_buffering(Connection* conn) noexcept;
  // Moves the body bytes in |conn|'s read buffer into its BodyBuffer.
  BodyStep take_body(Connection* conn) noexcept;
  // |conn| (kBuffering) is readable: reads on, and dispatches the request once complete.
  void read_body(Connection* conn) noexcept;
  // A kBuffering connection is past [limits] body_timeout, or silent for too long.
  bool body_expired(const Connection& conn, double now) const noexcept;
  // The request line's method and target, for logs.
  static std::string_view head_method(const Connection& conn) noexcept;
  static std::string_view head_target(const Connection& conn) noexcept;
  void send_error_and_linger(Connection* conn, int status) noexcept;
  void close_connection(Connection* conn) noexcept;
  void set_reader(Connection* conn, bool on) noexcept;
  void schedule_tick() noexcept;
  void maybe_finish_drain() noexcept;
  // The worker is leaving (drain, max_requests): every websocket gets a close frame with
  // |code| and its app's pending receive fails, soon (call_soon: on_goodbye). Once only.
  void close_websockets(uint16_t code) noexcept;
  // Only websockets keep the worker, and they had their moment to close: it may exit.
  bool only_websockets_left() const noexcept;
  // The app's own asyncio watchers on an upgraded connection go before the server lets go of
  // its fd: asyncio must forget them before the number is reused.
  void forget_app_watchers(Connection* conn) noexcept;
  void retire() noexcept;
  void unreserve(Connection* conn) noexcept;
  void send_heartbeat() noexcept;
  void update_date() noexcept;
  Core* take_free_core() noexcept;

  static Server* instance_;
  WorkerContext ctx_;
  PyRef loop_, app_, main_greenlet_;
  LoopCalls calls_;
  PyRef on_poll_fn_, on_writable_fn_, on_tick_fn_, on_control_fn_, on_settle_fn_, on_goodbye_fn_;
  PyRef on_flush_held_fn_;               // made on first use (worker/held_output.cpp)
  std::vector<Connection*> held_conns_;  // with held responses, for on_flush_held
  bool flush_held_scheduled_ = false;
  std::vector<PyRef> templates_;  // environ template per listener
  // [tls], loaded by each worker at start (so a HUP's new generation reads the files again);
  // null without an https:// listener.
  SslCtxPtr tls_ctx_;
  IpNetworks trusted_proxies_;
  std::string mount_;
  std::string temp_dir_;  // [server] temp_dir, or $TMPDIR / /tmp when unset
  std::vector<std::unique_ptr<Connection>> conns_;  // indexed by fd
  ReadinessSet readiness_;                          // conns_ watched for input
  std::vector<std::unique_ptr<Core>> cores_;        // created lazily up to config cores
  std::vector<Core*> free_cores_;
  std::unique_ptr<StaticFiles> statics_;  // null without a [static] map
  std::deque<Connection*> queue_;         // heads complete, waiting for a core
  std::deque<PyRef> retired_;             // retired core greenlets, oldest first
  size_t busy_cores_ = 0;
  size_t open_connections_ = 0;
  bool draining_ = false;
  bool retiring_ = false;
  RequestBudget budget_;
  bool stopping_ = false;
  double drain_deadline_ = 0;
  uint16_t ws_goodbye_ = 0;         // close_websockets' code; 0 until the worker leaves
  double ws_goodbye_deadline_ = 0;  // from then on websockets do not hold the worker
  uint64_t requests_ = 0;
  std::string date_header_;
  std::string added_headers_;
  time_t date_second_ = 0;
  Acceptor acceptor_{this, ctx_};  // after ctx_, which it refers to
};

}  // namespace aiowsgi::worker
