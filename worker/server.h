// Server: the per-worker request engine. Watches the listen sockets and the client
// connections through the worker's asyncio loop, parses request heads on the loop's greenlet,
// and hands complete requests to a bounded set of reusable greenlet cores. One per worker
// process; every method runs on the worker's single thread with the GIL held.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "worker/accept_balance.h"
#include "worker/connection.h"
#include "worker/core.h"
#include "worker/python/py_ref.h"
#include "worker/request_budget.h"
#include "worker/static_files.h"
#include "worker/worker.h"

namespace aiowsgi::worker {

// Monotonic seconds (coarse clock: cheap, ~4 ms resolution — enough for timeouts).
double now_seconds() noexcept;

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
  // finish (up to graceful_timeout); then the loop is stopped.
  void drain() noexcept;
  // Immediate stop: the loop is stopped now.
  void stop_now() noexcept;
  // After the loop stopped: kills cores, closes every connection.
  void shutdown() noexcept;

  const config::Config& config() const { return *ctx_.config; }
  const WorkerContext& context() const { return ctx_; }
  PyObject* app() const { return app_.get(); }
  PyObject* loop() const { return loop_.get(); }
  PyObject* main_greenlet() const { return main_greenlet_.get(); }
  bool draining() const { return draining_; }
  // max_requests reached: no more requests are taken on; exits once its connections are done.
  bool retiring() const { return retiring_; }
  const std::string& date_header() const { return date_header_; }  // "Date: ...\r\n"

  // --- Used by cores -----------------------------------------------------------------------
  // A core finished with its connection: hand it back to the loop (keep-alive) or close it.
  void release_connection(Connection* conn, bool keep_alive) noexcept;
  // Next queued connection for a core that just finished, or nullptr.
  Connection* next_queued() noexcept;
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
  // Answers |conn| with a canned error status and closes it after a short linger.
  void reject(Connection* conn, int status) noexcept { send_error_and_linger(conn, status); }
  // Shuts the write side of |conn| (its response is out), discards input for a moment, closes.
  void linger_close(Connection* conn) noexcept;
  // Answers |conn|'s complete request head on the loop if its path is under a [static] map
  // prefix (the connection then leaves any core). False: a request for the app.
  bool serve_static(Connection* conn) noexcept { return statics_ && statics_->try_serve(conn); }
  // A response answered on the loop (static file) is done and |conn| stays open: wait for
  // its next request, or parse the one already buffered (pipelining). May close |conn|.
  void resume_reading(Connection* conn) noexcept;
  void count_request() { ++requests_; }
  // max_requests (worker/request_budget.h). A request head on |conn| is complete: take it on
  // (true) or not (false: over the limit; the caller closes the connection unanswered).
  bool admit(Connection* conn) noexcept;
  // The response on |conn| is about to say whether the connection stays open: true when it
  // may (not draining, and the budget can still serve one more request on it).
  bool keep_alive_allowed(Connection* conn) noexcept;
  uint64_t exceptions = 0;      // app exceptions logged
  uint64_t tx_bytes = 0;        // response bytes sent
  uint64_t harakiri_count = 0;  // requests cancelled by harakiri
  uint64_t requests() const { return requests_; }

  // --- Loop callbacks (module-level C functions forward here) --------------------------------
  void on_accept(size_t listener) noexcept;
  void on_readable(int fd) noexcept;
  void on_writable(int fd) noexcept;
  void on_tick() noexcept;
  void on_control() noexcept;
  void on_settle(int core_id) noexcept;
  void on_defer_end() noexcept;

 private:
  bool build_templates() noexcept;
  void accept_from(size_t listener) noexcept;
  void accept_batch(size_t listener, size_t limit) noexcept;
  void watch_listeners(bool on) noexcept;
  void defer_accepting() noexcept;
  void read_head(Connection* conn) noexcept;
  void process_head(Connection* conn) noexcept;  // parses buffered bytes of a request head
  // Whether every core being busy stops this worker from accepting connections.
  bool cores_full() const noexcept;
  void dispatch(Connection* conn) noexcept;
  void send_error_and_linger(Connection* conn, int status) noexcept;
  void close_connection(Connection* conn) noexcept;
  void set_reader(Connection* conn, bool on) noexcept;
  void pause_accepting() noexcept;
  void resume_accepting() noexcept;
  void schedule_tick() noexcept;
  void maybe_finish_drain() noexcept;
  void retire() noexcept;
  void unreserve(Connection* conn) noexcept;
  void send_heartbeat() noexcept;
  void update_date() noexcept;
  Core* take_free_core() noexcept;

  static Server* instance_;
  WorkerContext ctx_;
  PyRef loop_, app_, main_greenlet_;
  PyRef add_reader_, remove_reader_, add_writer_, remove_writer_, call_later_, call_soon_, stop_;
  PyRef on_accept_fn_, on_readable_fn_, on_writable_fn_, on_tick_fn_, on_control_fn_;
  PyRef on_settle_fn_;
  PyRef on_defer_end_fn_, defer_delay_;
  std::vector<PyRef> listener_ids_;                 // ints passed to on_accept
  std::vector<PyRef> templates_;                    // environ template per listener
  std::vector<std::unique_ptr<Connection>> conns_;  // indexed by fd
  std::vector<std::unique_ptr<Core>> cores_;        // created lazily up to config cores
  std::vector<Core*> free_cores_;
  std::unique_ptr<StaticFiles> statics_;  // null without a [static] map
  std::deque<Connection*> queue_;         // heads complete, waiting for a core
  std::deque<PyRef> retired_;             // retired core greenlets, oldest first
  size_t busy_cores_ = 0;
  size_t open_connections_ = 0;
  bool accepting_ = false;  // the listen sockets are watched
  // The listen sockets are unwatched for a moment because a peer holds fewer connections
  // (AcceptBalance); the worker still counts as taking connections.
  bool deferring_ = false;
  bool defer_timer_pending_ = false;
  uint64_t defer_mark_ = 0;  // peers' accepted total when the deferral began
  AcceptBalance balance_;
  bool draining_ = false;
  bool retiring_ = false;
  RequestBudget budget_;
  bool stopping_ = false;
  double drain_deadline_ = 0;
  uint64_t requests_ = 0;
  double last_accept_error_log_ = 0;
  double accept_resume_at_ = 0;  // accept() ran out of fds: resume after this
  std::string date_header_;
  time_t date_second_ = 0;
};

}  // namespace aiowsgi::worker
