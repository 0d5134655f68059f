// Server, held responses: a batch of pipelined requests answered in one write. A core serving
// request k of a batch whose request k+1 is already buffered holds k's small complete
// response in Connection::held_out (ResponseWriter::hold_or_send); the next send on the
// connection takes it along. When the core suspends before that (the app waits), the loop
// sends what is held at its next turn, so answers made before a slow request are not kept
// waiting behind it. Workers only; the loop's greenlet or a core, GIL held.
#include <errno.h>
#include <sys/uio.h>

#include <algorithm>

#include "worker/connection.h"
#include "worker/core.h"
#include "worker/server.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

PyObject* cb_flush_held(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->on_flush_held();
  Py_RETURN_NONE;
}

PyMethodDef kFlushHeldDef = {"_aiowsgi_flush_held", cb_flush_held, METH_NOARGS, nullptr};

}  // namespace

void Server::note_held(Connection* conn) noexcept {
  if (conn->held_listed) return;
  conn->held_listed = true;
  held_conns_.push_back(conn);
  if (flush_held_scheduled_) return;
  if (!on_flush_held_fn_) {
    on_flush_held_fn_ = PyRef::steal(PyCFunction_New(&kFlushHeldDef, nullptr));
    if (!on_flush_held_fn_) {
      PyErr_Clear();
      return;  // the core's own next send, or its release, takes the held bytes along
    }
  }
  // One callback per loop turn, whatever the number of batches: the common case (the whole
  // batch answered without a suspension) finds nothing left to send.
  flush_held_scheduled_ = call_logged(calls_.call_soon.get(), "call_soon", on_flush_held_fn_.get());
}

void Server::on_flush_held() noexcept {
  flush_held_scheduled_ = false;
  std::vector<Connection*> conns;
  conns.swap(held_conns_);
  for (Connection* conn : conns) {
    conn->held_listed = false;
    if (!conn->held_out.empty()) send_held_now(conn);
  }
}

void Server::send_held_now(Connection* conn) noexcept {
  std::string& out = conn->held_out;
  size_t sent = 0;
  while (sent < out.size()) {
    iovec iov{out.data() + sent, out.size() - sent};
    ssize_t n = transport_send(*conn, &iov, 1);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      tx_bytes += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The rest goes when there is room (on_writable), or with the core's next send. A TLS
      // session that must read first (a key update) leaves it to the core's next send, which
      // waits in the right direction.
      out.erase(0, sent);
      if (conn->state == ConnState::kInCore && wait_for_write(*conn, true)) watch_writable(conn);
      return;
    }
    // The client is gone: its core finds out on its next send, or at release.
    conn->peer_closed = true;
    break;
  }
  out.clear();
}

void Server::forget_held(Connection* conn) noexcept {
  conn->held_out.clear();
  if (!conn->held_listed) return;
  conn->held_listed = false;
  held_conns_.erase(std::remove(held_conns_.begin(), held_conns_.end(), conn), held_conns_.end());
}

}  // namespace aiowsgi::worker
