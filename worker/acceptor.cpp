#include "worker/acceptor.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/fd_budget.h"
#include "common/status.h"
#include "worker/python/python_module.h"
#include "worker/server.h"

namespace aiowsgi::worker {

namespace {

constexpr size_t kMaxAcceptsPerWakeup = 64;
// How long a worker that left new connections to a less loaded peer stops watching the
// listen sockets. Short: a burst keeps arriving, and the wait is added to the connections'
// latency when the peer cannot take them.
constexpr double kDeferSeconds = 0.001;

// Module-level C callbacks handed to the asyncio loop: each forwards to the server's acceptor
// and never lets an exception out.
PyObject* cb_accept(PyObject*, PyObject* arg) noexcept {
  if (Server* s = Server::instance()) s->acceptor().on_accept(PyLong_AsSize_t(arg));
  Py_RETURN_NONE;
}
PyObject* cb_defer_end(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->acceptor().on_defer_end();
  Py_RETURN_NONE;
}

PyMethodDef kAcceptDef = {"_aiowsgi_accept", cb_accept, METH_O, nullptr};
PyMethodDef kDeferEndDef = {"_aiowsgi_defer_end", cb_defer_end, METH_NOARGS, nullptr};

}  // namespace

Acceptor::Acceptor(Server* server, const WorkerContext& ctx)
    : server_(server),
      ctx_(ctx),
      balance_(ctx.board, ctx.score, static_cast<uint32_t>(ctx.config->server.cores)),
      max_open_(static_cast<size_t>(connection_cap(
          static_cast<uint64_t>(ctx.config->limits.max_connections), ctx.sockets.size()))) {}

bool Acceptor::start() noexcept {
  on_accept_fn_ = PyRef::steal(PyCFunction_New(&kAcceptDef, nullptr));
  on_defer_end_fn_ = PyRef::steal(PyCFunction_New(&kDeferEndDef, nullptr));
  defer_delay_ = PyRef::steal(PyFloat_FromDouble(kDeferSeconds));
  if (!on_accept_fn_ || !on_defer_end_fn_ || !defer_delay_) return false;
  for (size_t i = 0; i < ctx_.sockets.size(); ++i) {
    listener_ids_.push_back(PyRef::steal(PyLong_FromSize_t(i)));
    if (!listener_ids_.back()) return false;
  }
  return true;
}

void Acceptor::on_tick(double now) noexcept {
  if (resume_at_ != 0 && now >= resume_at_) {
    resume_at_ = 0;
    resume();
  }
}

void Acceptor::log_totals() const noexcept {
  spdlog::debug(
      "accepted {} connection(s); {} accept call(s) found the queue empty; left new "
      "connections to a less loaded worker {} time(s)",
      balance_.accepted(), balance_.empty(), balance_.deferrals());
}

void Acceptor::resume() noexcept {
  if (accepting_ || server_->draining() || server_->retiring() || server_->stopping()) return;
  // max_requests: every request this worker may still take on is promised to a connection
  // it holds; the others wait in the backlog for another worker or the replacement.
  if (!server_->budget().has_room()) return;
  // Standing aside for a peer ends early once this worker is no longer ahead of it (its own
  // connections closed): the peer may be standing aside too.
  if (deferring_ && balance_.allowance(server_->open_connections()) == 0) return;
  deferring_ = false;
  // Every core busy, the per-worker connection cap reached, or the out-of-fds back-off
  // running: the listen sockets stay unwatched (other workers take the connections).
  if (server_->cores_full() || server_->open_connections() >= max_open_ || resume_at_ != 0) return;
  watch_listeners(true);
}

void Acceptor::pause() noexcept {
  deferring_ = false;
  if (accepting_) watch_listeners(false);
  balance_.set_accepting(false);
}

void Acceptor::watch_listeners(bool on) noexcept {
  for (size_t i = 0; i < ctx_.sockets.size(); ++i) {
    PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.sockets[i].fd));
    if (!fd) {
      PyErr_Clear();
      continue;
    }
    if (on) {
      call_logged(server_->loop_calls().add_reader.get(), "watching a listen socket", fd.get(),
                  on_accept_fn_.get(), listener_ids_[i].get());
    } else {
      call_logged(server_->loop_calls().remove_reader.get(), "unwatching a listen socket",
                  fd.get());
    }
  }
  accepting_ = on;
  balance_.set_accepting(on);
}

// A peer holds a smaller share of connections: leave the queued ones to it (woken by the same
// readiness, or back from standing aside within kDeferSeconds) and look again in a moment.
// While standing aside the worker is not woken by every new connection: it adds no herd.
void Acceptor::defer() noexcept {
  watch_listeners(false);
  deferring_ = true;
  balance_.set_accepting(true);
  defer_mark_ = balance_.peers_accepted();
  balance_.count_deferral();
  if (defer_timer_pending_) return;  // ends this deferral a little early: harmless
  PyRef r = PyRef::steal(PyObject_CallFunctionObjArgs(
      server_->loop_calls().call_later.get(), defer_delay_.get(), on_defer_end_fn_.get(), nullptr));
  if (r) {
    defer_timer_pending_ = true;
    return;
  }
  spdlog::error("call_later failed: {}", fetch_exception_text());
  deferring_ = false;
  resume();
}

void Acceptor::on_defer_end() noexcept {
  defer_timer_pending_ = false;
  if (!deferring_) return;
  deferring_ = false;
  bool peers_stuck = balance_.peers_accepted() == defer_mark_;
  resume();
  // No peer accepted anything while this worker stood aside: their loops are held (a long
  // synchronous request, a stopped process). A deferral is a delay, never a refusal: take a
  // few of the waiting connections now, whatever the balance says.
  if (peers_stuck) {
    for (size_t i = 0; i < ctx_.sockets.size() && accepting_; ++i)
      accept_batch(i, AcceptBalance::kMargin);
  }
}

void Acceptor::on_accept(size_t listener) noexcept {
  if (listener >= ctx_.sockets.size()) return;
  size_t limit = balance_.allowance(server_->open_connections());
  if (limit == 0) {
    defer();
    return;
  }
  accept_batch(listener, std::min(limit, kMaxAcceptsPerWakeup));
}

void Acceptor::accept_batch(size_t listener, size_t limit) noexcept {
  const ListenSocket& ls = ctx_.sockets[listener];
  for (size_t n = 0; n < limit && accepting_; ++n) {
    if (!server_->budget().has_room()) {
      pause();  // resume() runs again when a reservation is given back
      return;
    }
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    int fd =
        accept4(ls.fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        balance_.count_empty();
        return;
      }
      if (err == EINTR || err == ECONNABORTED) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors: stop watching the listen sockets for a moment instead of
        // spinning on a socket that stays readable; the tick resumes accepting.
        double now = now_seconds();
        if (now - last_error_log_ > 5) {
          spdlog::warn("accept on {} failed: {}; pausing accepts for 0.5 s", ls.name,
                       aiowsgi::errno_string(err));
          last_error_log_ = now;
        }
        resume_at_ = now + 0.5;
        pause();
        return;
      }
      spdlog::warn("accept on {} failed: {}", ls.name, aiowsgi::errno_string(err));
      return;
    }
    balance_.count_accepted();
    server_->adopt(fd, peer, listener);
    const size_t open = server_->open_connections();
    if (open >= max_open_) {
      if (now_seconds() - last_error_log_ > 5) {
        spdlog::warn(
            "worker {} has {} open connections ([limits] max_connections{}); pausing accepts",
            ctx_.worker_id, open,
            max_open_ < static_cast<size_t>(ctx_.config->limits.max_connections)
                ? ", lowered to what the open-file limit allows"
                : "");
        last_error_log_ = now_seconds();
      }
      pause();
    }
  }
}

// --- Reading request heads on the loop -------------------------------------------------------

}  // namespace aiowsgi::worker
