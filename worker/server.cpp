#include "worker/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "common/status.h"
#include "worker/access_log.h"
#include "worker/control_link.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/python_module.h"
#include "worker/response_writer.h"
#include "worker/static_files.h"

namespace aiowsgi::worker {

Server* Server::instance_ = nullptr;

namespace {

constexpr double kTickSeconds = 0.25;
constexpr double kLingerSeconds = 2.0;
// While draining, how long an idle keep-alive connection may still bring one last request.
constexpr double kDrainIdleGraceSeconds = 1.0;
// Bytes a connection may buffer ahead of the request its core is serving (pipelining)
// before the loop stops reading it.
constexpr size_t kMaxReadAhead = 256 * 1024;
constexpr size_t kMaxAcceptsPerWakeup = 64;
// How long a worker that left new connections to a less loaded peer stops watching the
// listen sockets. Short: a burst keeps arriving, and the wait is added to the connections'
// latency when the peer cannot take them.
constexpr double kDeferSeconds = 0.001;

// Module-level C callbacks handed to the asyncio loop. Each forwards to the server and never
// lets an exception out: asyncio would only log it, and the state would be half-updated.
PyObject* cb_accept(PyObject*, PyObject* arg) noexcept {
  if (Server* s = Server::instance()) s->on_accept(PyLong_AsSize_t(arg));
  Py_RETURN_NONE;
}
PyObject* cb_readable(PyObject*, PyObject* arg) noexcept {
  if (Server* s = Server::instance()) s->on_readable(static_cast<int>(PyLong_AsLong(arg)));
  Py_RETURN_NONE;
}
PyObject* cb_writable(PyObject*, PyObject* arg) noexcept {
  if (Server* s = Server::instance()) s->on_writable(static_cast<int>(PyLong_AsLong(arg)));
  Py_RETURN_NONE;
}
PyObject* cb_tick(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->on_tick();
  Py_RETURN_NONE;
}
PyObject* cb_control(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->on_control();
  Py_RETURN_NONE;
}
PyObject* cb_settle(PyObject*, PyObject* arg) noexcept {
  if (Server* s = Server::instance()) s->on_settle(static_cast<int>(PyLong_AsLong(arg)));
  Py_RETURN_NONE;
}
PyObject* cb_defer_end(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->on_defer_end();
  Py_RETURN_NONE;
}

PyMethodDef kAcceptDef = {"_aiowsgi_accept", cb_accept, METH_O, nullptr};
PyMethodDef kReadableDef = {"_aiowsgi_readable", cb_readable, METH_O, nullptr};
PyMethodDef kWritableDef = {"_aiowsgi_writable", cb_writable, METH_O, nullptr};
PyMethodDef kTickDef = {"_aiowsgi_tick", cb_tick, METH_NOARGS, nullptr};
PyMethodDef kControlDef = {"_aiowsgi_control", cb_control, METH_NOARGS, nullptr};
PyMethodDef kSettleDef = {"_aiowsgi_settle", cb_settle, METH_O, nullptr};
PyMethodDef kDeferEndDef = {"_aiowsgi_defer_end", cb_defer_end, METH_NOARGS, nullptr};

// Calls a cached bound method with positional args; logs and clears a Python error.
bool call_logged(PyObject* fn, const char* what, PyObject* a, PyObject* b = nullptr,
                 PyObject* c = nullptr) noexcept {
  PyObject* r = b == nullptr ? PyObject_CallOneArg(fn, a)
                             : (c == nullptr ? PyObject_CallFunctionObjArgs(fn, a, b, nullptr)
                                             : PyObject_CallFunctionObjArgs(fn, a, b, c, nullptr));
  if (r == nullptr) {
    spdlog::error("{} failed: {}", what, fetch_exception_text());
    return false;
  }
  Py_DECREF(r);
  return true;
}

}  // namespace

ssize_t Connection::fill() noexcept {
  // The worker is single-threaded: one scratch buffer serves every connection.
  static char scratch[65536];
  ssize_t n = recv(fd, scratch, sizeof scratch, 0);
  if (n > 0) rbuf.append(scratch, static_cast<size_t>(n));
  return n;
}

double now_seconds() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Server::Server(const WorkerContext& ctx, PyObject* loop, PyObject* app)
    : ctx_(ctx),
      loop_(PyRef::borrow(loop)),
      app_(PyRef::borrow(app)),
      balance_(ctx.board, ctx.score, static_cast<uint32_t>(ctx.config->server.cores)),
      budget_(static_cast<uint64_t>(std::max<int64_t>(ctx.config->limits.max_requests, 0))) {
  instance_ = this;
}

Server::~Server() {
  if (instance_ == this) instance_ = nullptr;
}

bool Server::start() noexcept {
  main_greenlet_ = PyRef::steal(greenlet::current());
  if (!main_greenlet_) return false;
  struct {
    PyRef* slot;
    const char* name;
  } methods[] = {{&add_reader_, "add_reader"},
                 {&remove_reader_, "remove_reader"},
                 {&add_writer_, "add_writer"},
                 {&remove_writer_, "remove_writer"},
                 {&call_later_, "call_later"},
                 {&call_soon_, "call_soon"},
                 {&stop_, "stop"}};
  for (auto& m : methods) {
    *m.slot = PyRef::steal(PyObject_GetAttrString(loop_.get(), m.name));
    if (!*m.slot) return false;
  }
  on_accept_fn_ = PyRef::steal(PyCFunction_New(&kAcceptDef, nullptr));
  on_readable_fn_ = PyRef::steal(PyCFunction_New(&kReadableDef, nullptr));
  on_writable_fn_ = PyRef::steal(PyCFunction_New(&kWritableDef, nullptr));
  on_tick_fn_ = PyRef::steal(PyCFunction_New(&kTickDef, nullptr));
  on_control_fn_ = PyRef::steal(PyCFunction_New(&kControlDef, nullptr));
  on_settle_fn_ = PyRef::steal(PyCFunction_New(&kSettleDef, nullptr));
  on_defer_end_fn_ = PyRef::steal(PyCFunction_New(&kDeferEndDef, nullptr));
  defer_delay_ = PyRef::steal(PyFloat_FromDouble(kDeferSeconds));
  if (!on_accept_fn_ || !on_readable_fn_ || !on_writable_fn_ || !on_tick_fn_ || !on_control_fn_ ||
      !on_settle_fn_ || !on_defer_end_fn_ || !defer_delay_)
    return false;
  if (!build_templates()) return false;
  for (size_t i = 0; i < ctx_.sockets.size(); ++i) {
    listener_ids_.push_back(PyRef::steal(PyLong_FromSize_t(i)));
    if (!listener_ids_.back()) return false;
  }
  cores_.reserve(static_cast<size_t>(config().server.cores));
  if (!config().statics.map.empty()) statics_ = std::make_unique<StaticFiles>(this);
  update_date();
  resume_accepting();
  if (ctx_.control_fd >= 0) {
    PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.control_fd));
    PyRef r = PyRef::steal(
        PyObject_CallFunctionObjArgs(add_reader_.get(), fd.get(), on_control_fn_.get(), nullptr));
    if (!r) return false;
  }
  schedule_tick();
  return true;
}

bool Server::build_templates() noexcept {
  // PEP 3333 keys whose values never change for a listener: copied into each environ.
  const auto& cfg = config();
  for (const ListenSocket& ls : ctx_.sockets) {
    PyRef d = PyRef::steal(PyDict_New());
    if (!d) return false;
    std::string server_name = "localhost", server_port = "0";
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(ls.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      char host[INET6_ADDRSTRLEN] = "";
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        server_name = host;
        server_port = std::to_string(ntohs(a->sin_port));
      } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        server_name = host;
        server_port = std::to_string(ntohs(a->sin6_port));
      } else {
        server_name = ls.name;
        server_port = "";
      }
    }
    PyRef version = PyRef::steal(Py_BuildValue("(ii)", 1, 0));
    PyObject* err_stream = PySys_GetObject("stderr");
    PyRef module = PyRef::steal(PyImport_ImportModule("aiowsgi"));
    PyRef fw = module ? PyRef::steal(PyObject_GetAttrString(module.get(), "FileWrapper")) : PyRef();
    if (!version || !fw) return false;
    struct {
      const char* key;
      PyObject* value;
    } items[] = {
        {"wsgi.version", version.get()},
        {"wsgi.url_scheme", nullptr},
        {"wsgi.errors", err_stream},
        {"wsgi.multithread", Py_False},
        {"wsgi.multiprocess", cfg.server.workers > 1 ? Py_True : Py_False},
        {"wsgi.run_once", Py_False},
        {"wsgi.file_wrapper", fw.get()},
        {"SCRIPT_NAME", nullptr},
        {"SERVER_NAME", nullptr},
        {"SERVER_PORT", nullptr},
    };
    for (auto& it : items) {
      PyRef v;
      if (it.value == nullptr) {
        const char* s = std::string_view(it.key) == "wsgi.url_scheme" ? "http"
                        : std::string_view(it.key) == "SCRIPT_NAME"   ? ""
                        : std::string_view(it.key) == "SERVER_NAME"   ? server_name.c_str()
                                                                      : server_port.c_str();
        v = PyRef::steal(PyUnicode_FromString(s));
        if (!v) return false;
      } else {
        v = PyRef::borrow(it.value);
      }
      if (v.get() == nullptr) continue;  // no sys.stderr: leave wsgi.errors out
      if (PyDict_SetItemString(d.get(), it.key, v.get()) < 0) return false;
    }
    templates_.push_back(std::move(d));
  }
  return true;
}

// --- Accepting ---------------------------------------------------------------------------------

void Server::resume_accepting() noexcept {
  if (accepting_ || draining_ || retiring_ || stopping_) return;
  // max_requests: every request this worker may still take on is promised to a connection
  // it holds; the others wait in the backlog for another worker or the replacement.
  if (!budget_.has_room()) return;
  // Standing aside for a peer ends early once this worker is no longer ahead of it (its own
  // connections closed): the peer may be standing aside too.
  if (deferring_ && balance_.allowance(open_connections_) == 0) return;
  deferring_ = false;
  // Every core busy, the per-worker connection cap reached, or the out-of-fds back-off
  // running: the listen sockets stay unwatched (other workers take the connections).
  if (cores_full() || open_connections_ >= static_cast<size_t>(config().limits.max_connections) ||
      accept_resume_at_ != 0)
    return;
  watch_listeners(true);
}

void Server::pause_accepting() noexcept {
  deferring_ = false;
  if (accepting_) watch_listeners(false);
  balance_.set_accepting(false);
}

void Server::watch_listeners(bool on) noexcept {
  for (size_t i = 0; i < ctx_.sockets.size(); ++i) {
    PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.sockets[i].fd));
    if (!fd) {
      PyErr_Clear();
      continue;
    }
    if (on) {
      call_logged(add_reader_.get(), "watching a listen socket", fd.get(), on_accept_fn_.get(),
                  listener_ids_[i].get());
    } else {
      call_logged(remove_reader_.get(), "unwatching a listen socket", fd.get());
    }
  }
  accepting_ = on;
  balance_.set_accepting(on);
}

// With a [static] map, a worker keeps accepting while its cores are busy: a static request
// needs no core and must not wait for one. App requests that arrive meanwhile wait in this
// worker's queue for a core, as requests on its keep-alive connections already do.
bool Server::cores_full() const noexcept {
  return busy_cores_ >= static_cast<size_t>(config().server.cores) && !statics_;
}

// A peer holds a smaller share of connections: leave the queued ones to it (woken by the same
// readiness, or back from standing aside within kDeferSeconds) and look again in a moment.
// While standing aside the worker is not woken by every new connection: it adds no herd.
void Server::defer_accepting() noexcept {
  watch_listeners(false);
  deferring_ = true;
  balance_.set_accepting(true);
  defer_mark_ = balance_.peers_accepted();
  balance_.count_deferral();
  if (defer_timer_pending_) return;  // ends this deferral a little early: harmless
  PyRef r = PyRef::steal(PyObject_CallFunctionObjArgs(call_later_.get(), defer_delay_.get(),
                                                      on_defer_end_fn_.get(), nullptr));
  if (r) {
    defer_timer_pending_ = true;
    return;
  }
  spdlog::error("call_later failed: {}", fetch_exception_text());
  deferring_ = false;
  resume_accepting();
}

void Server::on_defer_end() noexcept {
  defer_timer_pending_ = false;
  if (!deferring_) return;
  deferring_ = false;
  bool peers_stuck = balance_.peers_accepted() == defer_mark_;
  resume_accepting();
  // No peer accepted anything while this worker stood aside: their loops are held (a long
  // synchronous request, a stopped process). A deferral is a delay, never a refusal: take a
  // few of the waiting connections now, whatever the balance says.
  if (peers_stuck) {
    for (size_t i = 0; i < ctx_.sockets.size() && accepting_; ++i)
      accept_batch(i, AcceptBalance::kMargin);
  }
}

void Server::on_accept(size_t listener) noexcept {
  if (listener >= ctx_.sockets.size()) return;
  accept_from(listener);
}

void Server::accept_from(size_t listener) noexcept {
  size_t limit = balance_.allowance(open_connections_);
  if (limit == 0) {
    defer_accepting();
    return;
  }
  accept_batch(listener, std::min(limit, kMaxAcceptsPerWakeup));
}

void Server::accept_batch(size_t listener, size_t limit) noexcept {
  const ListenSocket& ls = ctx_.sockets[listener];
  for (size_t n = 0; n < limit && accepting_; ++n) {
    if (!budget_.has_room()) {
      pause_accepting();  // resume_accepting() runs again when a reservation is given back
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
        if (now - last_accept_error_log_ > 5) {
          spdlog::warn("accept on {} failed: {}; pausing accepts for 0.5 s", ls.name,
                       aiowsgi::errno_string(err));
          last_accept_error_log_ = now;
        }
        accept_resume_at_ = now + 0.5;
        pause_accepting();
        return;
      }
      spdlog::warn("accept on {} failed: {}", ls.name, aiowsgi::errno_string(err));
      return;
    }
    std::string addr, port;
    if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char host[INET6_ADDRSTRLEN] = "";
      if (peer.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&peer);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = std::to_string(ntohs(a->sin_port));
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&peer);
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
    balance_.count_accepted();
    balance_.set_connections(open_connections_);
    if (open_connections_ >= static_cast<size_t>(config().limits.max_connections)) {
      if (now_seconds() - last_accept_error_log_ > 5) {
        spdlog::warn(
            "worker {} has {} open connections ([limits] max_connections); pausing accepts",
            ctx_.worker_id, open_connections_);
        last_accept_error_log_ = now_seconds();
      }
      pause_accepting();
    }
    c->listener = listener;
    c->reserved = budget_.reserve();  // has_room() held above
    if (ls.uwsgi) {
      UwsgiParser::Limits ul;
      ul.max_header_bytes = limits.max_header_bytes;
      ul.max_body_bytes = limits.max_body_bytes;
      ul.max_header_fields = limits.max_header_fields;
      c->uwsgi = std::make_unique<UwsgiParser>(ul);
    }
    c->remote_addr = PyRef::steal(PyUnicode_FromStringAndSize(addr.data(), addr.size()));
    c->remote_port = PyRef::steal(PyUnicode_FromStringAndSize(port.data(), port.size()));
    if (!c->remote_addr || !c->remote_port) {
      PyErr_Clear();
      close_connection(c);
      continue;
    }
    c->deadline = now_seconds() + config().limits.header_timeout;
    set_reader(c, true);
    if (!c->reader_registered) {
      close_connection(c);
      continue;
    }
  }
}

// --- Reading request heads on the loop -------------------------------------------------------

void Server::set_reader(Connection* conn, bool on) noexcept {
  if (conn->reader_registered == on) return;
  PyRef fd = PyRef::steal(PyLong_FromLong(conn->fd));
  if (!fd) {
    PyErr_Clear();
    return;
  }
  bool ok =
      on ? call_logged(add_reader_.get(), "add_reader", fd.get(), on_readable_fn_.get(), fd.get())
         : call_logged(remove_reader_.get(), "remove_reader", fd.get());
  if (ok) conn->reader_registered = on;
}

bool Server::watch_readable(Connection* conn) noexcept {
  set_reader(conn, true);
  return conn->reader_registered;
}

bool Server::watch_writable(Connection* conn) noexcept {
  PyRef fd = PyRef::steal(PyLong_FromLong(conn->fd));
  if (!fd) {
    PyErr_Clear();
    return false;
  }
  return call_logged(add_writer_.get(), "add_writer", fd.get(), on_writable_fn_.get(), fd.get());
}

void Server::unwatch_writable(Connection* conn) noexcept {
  PyRef fd = PyRef::steal(PyLong_FromLong(conn->fd));
  if (fd) call_logged(remove_writer_.get(), "remove_writer", fd.get());
}

void Server::on_readable(int fd) noexcept {
  if (fd < 0 || static_cast<size_t>(fd) >= conns_.size() || !conns_[fd]) return;
  Connection* conn = conns_[fd].get();
  switch (conn->state) {
    case ConnState::kReadingHead:
      read_head(conn);
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
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_connection(conn);  // EOF or reset between requests: nothing to answer
    return;
  }
  if (!conn->head_started) {
    conn->head_started = true;
    conn->deadline = now_seconds() + config().limits.header_timeout;
  }
  process_head(conn);
}

void Server::process_head(Connection* conn) noexcept {
  size_t consumed = 0;
  if (conn->uwsgi) {
    auto u = conn->uwsgi->feed(conn->data(), conn->buffered(), &consumed);
    conn->consume(consumed);
    if (u == UwsgiParser::Result::kIncomplete) return;
    if (u == UwsgiParser::Result::kError) {
      spdlog::debug("bad uwsgi packet from {}: {} {}", PyUnicode_AsUTF8(conn->remote_addr.get()),
                    conn->uwsgi->error_status(), conn->uwsgi->error_reason());
      send_error_and_linger(conn, conn->uwsgi->error_status());
      return;
    }
    conn->uwsgi_body_left = conn->uwsgi->content_length().value_or(0);
    if (serve_static(conn)) return;
    dispatch(conn);
    return;
  }
  auto r = conn->parser.feed_head(conn->data(), conn->buffered(), &consumed);
  conn->consume(consumed);
  switch (r) {
    case RequestParser::Result::kIncomplete:
      return;
    case RequestParser::Result::kError:
      spdlog::debug("bad request from {}: {} {}", PyUnicode_AsUTF8(conn->remote_addr.get()),
                    conn->parser.error_status(), conn->parser.error_reason());
      send_error_and_linger(conn, conn->parser.error_status());
      return;
    case RequestParser::Result::kHeadComplete:
    case RequestParser::Result::kMessageComplete:
      if (serve_static(conn)) return;
      dispatch(conn);
      return;
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

void Server::dispatch(Connection* conn) noexcept {
  if (!admit(conn)) {
    close_connection(conn);
    return;
  }
  Core* core = take_free_core();
  if (core == nullptr) {
    conn->state = ConnState::kQueued;
    queue_.push_back(conn);
    return;
  }
  ++busy_cores_;
  if (cores_full()) pause_accepting();
  if (!core->start(conn)) {
    spdlog::error("could not start a core: {}", fetch_exception_text());
    --busy_cores_;
    free_cores_.push_back(core);
    send_error_and_linger(conn, 503);
  }
}

Connection* Server::next_queued() noexcept {
  while (!queue_.empty()) {
    Connection* c = queue_.front();
    queue_.pop_front();
    return c;
  }
  return nullptr;
}

void Server::core_idle(Core* core) noexcept {
  free_cores_.push_back(core);
  --busy_cores_;
  resume_accepting();
  if (draining_ || retiring_) maybe_finish_drain();
}

bool Server::admit(Connection* conn) noexcept {
  bool ok = budget_.admit(conn->reserved);
  conn->reserved = false;
  if (!ok) {
    // Unreachable while every connection that can bring a request holds a reservation; if
    // it happens, closing unanswered is what a client retrying on a reused connection expects.
    spdlog::warn("max_requests: a request from {} arrived past the limit; closing its connection",
                 PyUnicode_AsUTF8(conn->remote_addr.get()));
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
  if (!accepting_) resume_accepting();
}

void Server::retire() noexcept {
  if (retiring_) return;
  retiring_ = true;
  pause_accepting();
  spdlog::info(
      "max_requests {} reached: no more requests taken on; finishing {} in flight, then exiting",
      config().limits.max_requests, busy_cores_ + queue_.size());
  ControlLink::retiring(ctx_.control_fd, ctx_.worker_id, budget_.admitted());
  maybe_finish_drain();
}

void Server::settle_later(Core* core) noexcept {
  call_logged(call_soon_.get(), "call_soon", on_settle_fn_.get(), core->id_object());
}

void Server::on_settle(int core_id) noexcept {
  if (Core* c = core(core_id)) c->settle();
}

void Server::keep_retired(PyRef greenlet) noexcept {
  if (greenlet) retired_.push_back(std::move(greenlet));
}

void Server::prune_retired() noexcept {
  if (retired_.empty()) return;
  // Dropping the last reference to a suspended greenlet ends it (greenlet throws GreenletExit
  // into it), and so does kill(): either way it returns to this, the loop's greenlet.
  std::erase_if(retired_, [](const PyRef& g) {
    return !greenlet::active(g.get()) || Py_REFCNT(g.get()) == 1;
  });
  while (retired_.size() > kMaxRetiredGreenlets) {
    PyRef g = std::move(retired_.front());
    retired_.pop_front();
    PyObject* r = greenlet::kill(g.get());
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
}

void Server::release_connection(Connection* conn, bool keep_alive) noexcept {
  conn->core = nullptr;
  // A connection left open must be able to bring its next request (max_requests).
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
  int fd = conn->fd;
  release_connection(conn, true);
  // release_connection may have closed it (draining, client gone).
  if (static_cast<size_t>(fd) < conns_.size() && conns_[fd].get() == conn &&
      conn->state == ConnState::kReadingHead && conn->buffered() > 0)
    process_head(conn);
}

void Server::send_error_and_linger(Connection* conn, int status) noexcept {
  std::string resp = error_response(status);
  // Best effort, non-blocking: the response is small and the socket buffer is empty.
  (void)send(conn->fd, resp.data(), resp.size(), MSG_NOSIGNAL);
  linger_close(conn);
}

void Server::linger_close(
    Connection* conn) noexcept {  // Shut the write side and drain input for a moment, so that
                                  // unread request bytes do not
  // make the kernel answer with a reset that would discard the response.
  ::shutdown(conn->fd, SHUT_WR);
  unreserve(conn);  // no request is read from it any more
  conn->state = ConnState::kLingering;
  conn->deadline = now_seconds() + kLingerSeconds;
  conn->rbuf.clear();
  conn->rpos = 0;
  set_reader(conn, true);
}

void Server::close_connection(Connection* conn) noexcept {
  int fd = conn->fd;
  if (conn->upgraded) {
    // The app may have left its own reader or writer on the fd: asyncio must forget them
    // before the number is reused, or its next registration would fail.
    PyRef fdo = PyRef::steal(PyLong_FromLong(fd));
    if (fdo) {
      call_logged(remove_reader_.get(), "remove_reader", fdo.get());
      call_logged(remove_writer_.get(), "remove_writer", fdo.get());
    }
    conn->reader_registered = false;
  }
  if (conn->static_send && statics_) statics_->forget(conn);
  if (conn->reader_registered) set_reader(conn, false);
  // If remove_reader failed, asyncio may still map fd; the flag follows the fd's closing.
  conn->reader_registered = false;
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
  ::close(fd);
  conns_[fd].reset();
  --open_connections_;
  balance_.set_connections(open_connections_);
  if (!accepting_) resume_accepting();
  if (draining_ || retiring_) maybe_finish_drain();
}

void Server::on_writable(int fd) noexcept {
  if (fd < 0 || static_cast<size_t>(fd) >= conns_.size() || !conns_[fd]) return;
  Connection* conn = conns_[fd].get();
  if (conn->state == ConnState::kStatic && statics_) {
    statics_->on_writable(conn);
  } else if (conn->core != nullptr && conn->core->state() == CoreState::kWaitWrite) {
    conn->core->wake(WakeReason::kReady);
  } else {
    unwatch_writable(conn);
  }
}

// --- Timers, draining ------------------------------------------------------------------------

void Server::schedule_tick() noexcept {
  PyRef delay = PyRef::steal(PyFloat_FromDouble(kTickSeconds));
  if (delay) call_logged(call_later_.get(), "call_later", delay.get(), on_tick_fn_.get());
}

void Server::update_date() noexcept {
  time_t t = time(nullptr);
  if (t == date_second_) return;
  date_second_ = t;
  tm g;
  gmtime_r(&t, &g);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &g);
  date_header_.assign(buf, n);
}

void Server::on_tick() noexcept {
  access_log::flush();  // lines reach the log within a tick even without further traffic
  if (stopping_) return;
  update_date();
  double now = now_seconds();
  if (accept_resume_at_ != 0 && now >= accept_resume_at_) {
    accept_resume_at_ = 0;
    resume_accepting();
  }
  // Connection deadlines. Collect first: closing mutates the table.
  std::vector<Connection*> expired;
  for (auto& up : conns_) {
    Connection* c = up.get();
    if (c == nullptr) continue;
    // kStatic: a static response whose reader took nothing for the send timeout.
    if ((c->state == ConnState::kReadingHead || c->state == ConnState::kLingering ||
         c->state == ConnState::kStatic) &&
        now >= c->deadline)
      expired.push_back(c);
  }
  for (Connection* c : expired) {
    if (c->state == ConnState::kReadingHead && c->head_started) {
      spdlog::debug("request head from {} not complete in time: 408",
                    PyUnicode_AsUTF8(c->remote_addr.get()));
      send_error_and_linger(c, 408);
    } else {
      close_connection(c);
    }
  }
  // Cores waiting on I/O past their deadline.
  for (auto& core : cores_) {
    if ((core->state() == CoreState::kWaitRead || core->state() == CoreState::kWaitWrite) &&
        now >= core->io_deadline())
      core->wake(WakeReason::kTimeout);
  }
  // Harakiri for suspended requests: the tick runs on the loop, so every core in a request
  // is suspended right now and can be cancelled alone, without touching the others.
  double harakiri = config().limits.harakiri;
  if (harakiri > 0) {
    for (auto& core : cores_) {
      if (core->in_request() && !core->cancelling() && now - core->request_start() > harakiri)
        core->cancel(now - core->request_start());
    }
  }
  if (draining_ && now >= drain_deadline_) {
    spdlog::warn("graceful timeout: {} request(s) still in flight, stopping anyway", busy_cores_);
    stop_now();
    return;
  }
  send_heartbeat();
  schedule_tick();
}

void Server::drain() noexcept {
  if (draining_ || stopping_) return;
  draining_ = true;
  drain_deadline_ = now_seconds() + config().server.graceful_timeout;
  access_log::flush();
  pause_accepting();
  // Idle keep-alive connections are not cut at once: a client may be sending its next request
  // right now, and closing under it would fail that request. Each gets a short grace; a
  // request that arrives is served with "Connection: close" (Core::build_head).
  double grace = now_seconds() + kDrainIdleGraceSeconds;
  for (auto& up : conns_) {
    if (up && up->state == ConnState::kReadingHead && !up->head_started)
      up->deadline = std::min(up->deadline, grace);
  }
  maybe_finish_drain();
}

void Server::maybe_finish_drain() noexcept {
  if (stopping_) return;
  if (busy_cores_ == 0 && queue_.empty() && open_connections_ == 0) stop_now();
}

void Server::stop_now() noexcept {
  if (stopping_) return;
  stopping_ = true;
  pause_accepting();
  PyRef r = PyRef::steal(PyObject_CallNoArgs(stop_.get()));
  if (!r) spdlog::error("loop.stop() failed: {}", fetch_exception_text());
}

void Server::shutdown() noexcept {
  spdlog::debug(
      "accepted {} connection(s); {} accept call(s) found the queue empty; left new "
      "connections to a less loaded worker {} time(s)",
      balance_.accepted(), balance_.empty(), balance_.deferrals());
  for (auto& core : cores_) core->kill();
  for (PyRef& g : retired_) {
    if (!greenlet::active(g.get())) continue;
    PyObject* r = greenlet::kill(g.get());
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
  retired_.clear();
  for (auto& up : conns_) {
    if (up) close_connection(up.get());
  }
}

void Server::on_control() noexcept {
  ControlLink::Command cmd;
  while (ControlLink::receive(ctx_.control_fd, &cmd)) {
    switch (cmd) {
      case ControlLink::Command::kDrain:
        spdlog::info("draining on the master's request");
        drain();
        break;
      case ControlLink::Command::kStop:
        stop_now();
        break;
      case ControlLink::Command::kReopenLogs:
        ControlLink::reopen_logs();
        break;
      case ControlLink::Command::kMasterGone:
        spdlog::warn("the master went away; stopping");
        drain();
        // Nothing more will come: stop watching the dead pipe.
        {
          PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.control_fd));
          if (fd) call_logged(remove_reader_.get(), "remove_reader", fd.get());
        }
        return;
      case ControlLink::Command::kNone:
        break;
    }
  }
}

void Server::send_heartbeat() noexcept {
  double oldest = 0;
  for (auto& core : cores_) {
    if (core->in_request() && (oldest == 0 || core->request_start() < oldest))
      oldest = core->request_start();
  }
  ControlLink::heartbeat(ctx_.control_fd, ctx_.worker_id, requests_, busy_cores_,
                         static_cast<uint64_t>(oldest * 1000));
}

}  // namespace aiowsgi::worker
