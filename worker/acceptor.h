// Acceptor: takes new connections from the listen sockets for one worker's Server. Decides
// when the listen sockets are watched (cores busy, connection cap, max_requests, out of fds,
// draining) and how many connections to take per wake-up given the peers' load
// (AcceptBalance), standing aside for a moment when a peer holds fewer. A member of the
// Server; workers only, on the loop's greenlet with the GIL held.
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "worker/accept_balance.h"
#include "worker/python/py_ref.h"
#include "worker/worker.h"

namespace aiowsgi::worker {

class Server;

class Acceptor {
 public:
  Acceptor(Server* server, const WorkerContext& ctx);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Creates the loop callbacks. False with a Python exception set.
  bool start() noexcept;
  // Watches the listen sockets again unless something holds accepting back (see the .cpp).
  void resume() noexcept;
  // Stops watching the listen sockets (and ends a deferral).
  void pause() noexcept;
  // The listen sockets are watched now.
  bool accepting() const { return accepting_; }
  // The worker's open connections changed (published for the peers' balance).
  void set_connections(size_t open) noexcept { balance_.set_connections(open); }
  // On the tick: the out-of-fds back-off has run out.
  void on_tick(double now) noexcept;
  // Worker shutdown: what the balance did, for the debug log.
  void log_totals() const noexcept;

  // Loop callbacks.
  void on_accept(size_t listener) noexcept;
  void on_defer_end() noexcept;

 private:
  void watch_listeners(bool on) noexcept;
  void defer() noexcept;
  void accept_batch(size_t listener, size_t limit) noexcept;

  Server* server_;
  const WorkerContext& ctx_;
  std::vector<PyRef> listener_ids_;  // ints passed to on_accept
  PyRef on_accept_fn_;
  PyRef on_defer_end_fn_;
  PyRef defer_delay_;
  bool accepting_ = false;  // the listen sockets are watched
  // The listen sockets are unwatched for a moment because a peer holds fewer connections
  // (AcceptBalance); the worker still counts as taking connections.
  bool deferring_ = false;
  bool defer_timer_pending_ = false;
  uint64_t defer_mark_ = 0;  // peers' accepted total when the deferral began
  AcceptBalance balance_;
  // [limits] max_connections, or fewer where the open-file limit allows fewer (fd_budget.h):
  // at it the worker stops accepting and its peers take the connections.
  size_t max_open_;
  double last_error_log_ = 0;  // accept errors and the connection cap are logged at most every 5 s
  double resume_at_ = 0;       // accept() ran out of fds: resume after this
};

}  // namespace aiowsgi::worker
