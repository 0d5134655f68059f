#include "worker/core.h"

#include <errno.h>
#include <spdlog/spdlog.h>

#include "common/stats_board.h"
#include "worker/access_log.h"
#include "worker/connection.h"
#include "worker/python/environ.h"
#include "worker/python/frame_stack.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/python_module.h"
#include "worker/python/request_bound.h"
#include "worker/python/request_context.h"
#include "worker/python/stack_dump.h"
#include "worker/server.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

PyMethodDef kRunDef = {"_aiowsgi_core", Core::run, METH_VARARGS, nullptr};

Core* core_from(PyObject* capsule) {
  return static_cast<Core*>(PyCapsule_GetPointer(capsule, nullptr));
}

}  // namespace

Core::Core(Server* server, int id) : server_(server), id_(id) {
  id_obj_ = PyRef::steal(PyLong_FromLong(id));
  thread_identity::register_core(id, &identity_);
  register_host(id, this);
}

Core::~Core() { unregister_host(id_); }

PyObject* Core::run(PyObject* self, PyObject*) noexcept {
  Core* core = core_from(self);
  if (core == nullptr) return nullptr;
  // This greenlet's own copy: the lease outlives the greenlet's tie to the core.
  std::shared_ptr<Lease> lease = core->lease_;
  // No Python frame of this greenlet exists yet: the moment to give it a small first chunk.
  frame_stack::adopt();
  core->serve(*lease);
  // Killed (worker shutdown) or retired: nothing here may touch the core any more.
  Py_RETURN_NONE;
}

bool Core::start(Connection* conn) noexcept {
  conn_ = conn;
  conn->core = this;
  conn->state = ConnState::kInCore;
  state_ = CoreState::kRunning;
  return enter();
}

void Core::settle() noexcept {
  if (state_ != CoreState::kSettling) return;
  state_ = CoreState::kRunning;
  if (enter()) return;
  spdlog::error("could not resume core {}: {}", id_, fetch_exception_text());
  Connection* conn = std::exchange(conn_, nullptr);
  if (conn != nullptr) server_->release_connection(conn, false);
  state_ = CoreState::kFree;
  server_->core_idle(this);
}

bool Core::enter() noexcept {
  if (greenlet_ && !parked_greenlet_reusable(Py_REFCNT(greenlet_.get()))) {
    // Something besides this core refers to the parked greenlet (typically a pending
    // call_later(t, me.switch) of an earlier request): a stale wake-up could resume it in the
    // middle of the next request. That one gets a fresh greenlet; the old one ends quietly
    // when (if ever) it is woken.
    spdlog::debug("core {}: a fresh greenlet; the last one is still referenced after {}", id_,
                  last_request_.view());
    lease_->retired = true;
    lease_->last_request = last_request_.view();
    server_->keep_retired(std::move(greenlet_));
  }
  server_->prune_retired();
  if (!greenlet_ || !greenlet::active(greenlet_.get())) {
    // First use, or the previous greenlet was killed or retired: a long-lived greenlet, reused
    // for every later request, because creating one costs tens of microseconds (NOTES.md).
    PyRef capsule = PyRef::steal(PyCapsule_New(this, nullptr, nullptr));
    if (!capsule) return false;
    PyRef run = PyRef::steal(PyCFunction_New(&kRunDef, capsule.get()));
    if (!run) return false;
    PyRef g =
        PyRef::steal(greenlet::create_core(run.get(), server_->main_greenlet(), id_obj_.get()));
    if (!g) return false;
    greenlet_ = std::move(g);
    lease_ = std::make_shared<Lease>();
    lease_->core_id = id_;
  }
  // The one resume a parked greenlet accepts (park() checks it).
  entering_ = true;
  // The marker tells the master which request holds the loop if it never switches back.
  score_running_core(server_->context().score, id_);
  PyObject* r = switch_in(false);
  score_running_core(server_->context().score, -1);
  entering_ = false;
  if (r == nullptr) {
    spdlog::error("core {} raised out of its greenlet: {}", id_, fetch_exception_text());
    return true;
  }
  Py_DECREF(r);
  return true;
}

void Core::wake(WakeReason why) noexcept {
  wake_ = why;
  score_running_core(server_->context().score, id_);
  PyObject* r = switch_in(false);
  score_running_core(server_->context().score, -1);
  if (r == nullptr) {
    spdlog::error("core {} raised out of its greenlet: {}", id_, fetch_exception_text());
    return;
  }
  Py_DECREF(r);
}

void Core::kill() noexcept {
  if (!greenlet_ || !greenlet::active(greenlet_.get())) return;
  killed_ = true;
  PyObject* r = switch_in(true);
  if (r == nullptr) PyErr_Clear();
  Py_XDECREF(r);
  state_ = CoreState::kFree;
}

void Core::cancel(double age) noexcept {
  if (!greenlet_ || !greenlet::active(greenlet_.get()) || conn_ == nullptr) return;
  cancelled_ = true;
  // Where the app waits, before GreenletExit unwinds it: what an operator needs to find why
  // the request never finished.
  std::string stack = stack_dump::suspended_stack(greenlet_.get());
  spdlog::error("harakiri: {} {} on core {} cancelled after {:.1f} s{}{}", method(), target(), id_,
                age, stack.empty() ? "" : "; it was suspended at (most recent call last):\n",
                stack);
  ++server_->harakiri_count;
  PyObject* r = switch_in(true);
  if (r == nullptr) {
    spdlog::error("core {} raised out of its greenlet: {}", id_, fetch_exception_text());
    return;
  }
  Py_DECREF(r);
}

std::string Core::describe_stack(double now) const {
  std::string stack = stack_dump::suspended_stack(greenlet_.get());
  return fmt::format("core {}: {} {} for {:.1f} s, suspended at (most recent call last):\n{}", id_,
                     method(), target(), now - request_start_,
                     stack.empty() ? "  (no Python frame)" : stack);
}

PyObject* Core::switch_in(bool kill) noexcept {
  thread_identity::Identity* was = thread_identity::enter(&identity_);
  PyObject* r = kill ? greenlet::kill(greenlet_.get()) : greenlet::switch_to(greenlet_.get());
  thread_identity::enter(was);
  return r;
}

PyObject* Core::switch_out() noexcept {
  // Not restored when control comes back: whoever switches into a core sets its identity
  // (switch_in, CoreGreenlet.switch), and a retired greenlet that is resumed only to end must
  // not leave its core's identity behind for the loop.
  thread_identity::enter(nullptr);
  return greenlet::switch_to(server_->main_greenlet());
}

void Core::serve(Lease& lease) noexcept {
  // Nothing but the server refers to a greenlet that has just started (no app code ran yet).
  running_refs_ = Py_REFCNT(greenlet_.get());
  for (;;) {
    while (conn_ != nullptr) {
      // A pipelined or queued request is served right here only if nothing the previous
      // request left behind could switch into this greenlet in the middle of it.
      switch (next_step(retire_pending_, Py_REFCNT(greenlet_.get()), running_refs_)) {
        case NextStep::kHere:
          break;
        case NextStep::kRetire:
          retire(lease);
          [[fallthrough]];
        case NextStep::kViaLoop:
          (void)writer_.flush_held();  // the batch's answers so far do not wait for the loop
          if (!park(lease, CoreState::kSettling)) return;
          break;
      }
      bool keep = handle_request();
      ++serial_;  // whatever the app kept of that request is stale from here on
      retire_pending_ = cancelled_ || disconnect_cancelled_;
      request_done(server_, conn_, id_, writer_.status_code());  // StatsBoard + access log
      if (killed_) return;
      // Unless the connection's next head is already buffered, the batch of pipelined
      // answers ends here: what is held leaves now, from this core. (With the next head only
      // partly here, release_connection sends the held bytes; an answer made on the loop, as
      // route_head's, goes after them.)
      if (!keep || conn_->buffered() == 0) (void)writer_.flush_held();
      // What this core serves next (a pipelined request of the same connection, a queued
      // connection, or nothing) is the server's one decision, as for the first request.
      // conn_ stays set meanwhile: routing the next head may flush the held answers through
      // this core's writer first.
      conn_ = server_->next_request(this, conn_, keep);
      writer_.release_buffers();  // taken again by the next response, if any
    }
    if (retire_pending_) retire(lease);
    if (!park(lease, CoreState::kFree)) return;
  }
}

bool Core::park(Lease& lease, CoreState how) noexcept {
  state_ = how;
  writer_.release_buffers();
  if (how == CoreState::kFree) {
    server_->core_idle(this);
  } else {
    server_->settle_later(this);
  }
  for (;;) {
    PyObject* r = switch_out();
    // Whatever resumed this greenlet, its own lease comes first: a retired greenlet has no
    // core any more, and must not touch the one it served.
    if (lease.retired) {
      if (r != nullptr) {
        Py_DECREF(r);
        spdlog::warn(
            "stale wake-up of a retired greenlet of core {} (its last request: {}) ignored",
            lease.core_id, lease.last_request);
      } else if (greenlet::exception_is_exit()) {
        PyErr_Clear();  // ended by the worker (shutdown, too many retired greenlets) or freed
      } else {
        spdlog::warn(
            "stale wake-up of a retired greenlet of core {} (its last request: {}) "
            "ignored: {}",
            lease.core_id, lease.last_request, fetch_exception_text());
      }
      return false;
    }
    const char* what = how == CoreState::kFree ? "idle" : "between requests";
    if (r == nullptr) {
      if (killed_) {
        PyErr_Clear();  // the worker is shutting down
        return false;
      }
      spdlog::warn("stale wake-up of core {} ({}; its last request: {}) ignored: {}", id_, what,
                   last_request_.view(), fetch_exception_text());
      continue;
    }
    Py_DECREF(r);
    if (entering_) {
      entering_ = false;
      return true;
    }
    // Not the loop handing over work: a wake-up left by a request that has ended. The core
    // stays where it is (listed once, waiting).
    spdlog::warn("stale wake-up of core {} ({}; its last request: {}) ignored", id_, what,
                 last_request_.view());
  }
}

void Core::retire(Lease& lease) noexcept {
  spdlog::debug("core {}: retiring its greenlet after the aborted {}", id_, last_request_.view());
  lease.retired = true;
  lease.last_request = last_request_.view();
  retire_pending_ = false;
  server_->keep_retired(std::move(greenlet_));
}

// --- One request --------------------------------------------------------------------------

// The C stack under the app is copied out of and back into the C stack whenever a held request
// switches away and back (greenlet), and kept while it is suspended: handle_request's frame
// holds only what the call needs. What comes before and after it is in functions of their own,
// whose frames are gone while the app runs.
bool Core::handle_request() noexcept {
  PyRef environ = PyRef::steal(begin_request());
  if (!environ) return false;
  // A vectorcall, not PyObject_CallFunctionObjArgs: its varargs frames (~350 bytes) would sit
  // on the C stack under the app too.
  PyObject* args[] = {environ.get(), start_response_.get()};
  PyRef result = PyRef::steal(PyObject_Vectorcall(server_->app(), args, 2, nullptr));
  return end_request(result.get());
}

PyObject* Core::begin_request() noexcept {
  ++serial_;
  ++requests_;
  cancelled_ = false;
  disconnect_cancelled_ = false;
  upgraded_ = false;
  request_start_ = now_seconds();
  server_->count_request();
  RequestParser& p = conn_->parser;
  score_request_begin(server_->context().score, id_, method(), target(), server_->tx_bytes);
  last_request_.set(method(), target());
  body_.reset();
  // A uwsgi-protocol peer (nginx's uwsgi_pass) reads the response until the connection closes.
  writer_.begin(method() == "HEAD",
                !conn_->uwsgi && p.keep_alive() && !p.upgrade() && !server_->draining());
  // An app taking the connection over writes on the socket itself: the batch's answers first.
  if (!conn_->uwsgi && p.upgrade()) (void)writer_.flush_held();

  if (!rebind_to_request(&start_response_, start_response_call, this, serial_) ||
      !rebind_to_request(&write_, write_call, this, serial_)) {
    spdlog::error("binding start_response failed: {}", fetch_exception_text());
    writer_.send_simple_error(500);
    return nullptr;
  }
  // contextvars: this request must not see what the last one on this core set.
  if (!request_context::begin()) {
    spdlog::error("a fresh context for the request failed: {}", fetch_exception_text());
    writer_.send_simple_error(500);
    return nullptr;
  }
  PyObject* environ = build_environ(*this);
  if (environ == nullptr) {
    spdlog::error("building the environ failed: {}", fetch_exception_text());
    writer_.send_simple_error(500);
  }
  return environ;
}

bool Core::end_request(PyObject* result) noexcept {
  if (result == nullptr) {
    if (cancelled_) return finish_cancelled();
    // The server's own GreenletExit (shutdown). One the app raises itself is an app
    // exception like any other.
    if (killed_) {
      PyErr_Clear();
      return false;
    }
    log_app_exception("calling the application");
    if (!writer_.headers_sent())
      writer_.send_simple_error(writer_.error_status() != 0 ? writer_.error_status() : 500);
    return false;
  }
  // A websocket app has already spoken on the socket: its return value is not a response.
  IoResult sent = upgraded_ ? IoResult::kClose : writer_.respond_from_result(result);
  if (sent == IoResult::kPythonError) PyErr_Clear();
  bool ok = sent == IoResult::kOk && !cancelled_;
  // PEP 3333: close() is called whatever happened, also when the client went away.
  // An exact list or tuple (the usual result) has no close(), and no attribute can be added.
  PyObject* close = interned().close.get();
  if (!PyList_CheckExact(result) && !PyTuple_CheckExact(result) &&
      PyObject_HasAttr(result, close)) {
    PyRef r = PyRef::steal(PyObject_CallMethodNoArgs(result, close));
    if (!r) {
      if (killed_) {
        PyErr_Clear();
        return false;
      }
      log_app_exception("closing the response iterable");
    }
  }
  if (cancelled_) return finish_cancelled();
  if (killed_ || !ok) return false;
  return body_.finish() && writer_.keep_alive();
}

bool Core::finish_cancelled() noexcept {
  PyErr_Clear();
  writer_.set_close();
  if (!writer_.headers_sent() && !conn_->peer_closed) writer_.send_simple_error(504);
  return false;
}

std::string_view Core::method() const {
  if (conn_->uwsgi) return conn_->uwsgi->find("REQUEST_METHOD").value_or("GET");
  return conn_->parser.method();
}

std::string_view Core::target() const {
  if (conn_->uwsgi) {
    if (auto uri = conn_->uwsgi->find("REQUEST_URI")) return *uri;
    return conn_->uwsgi->find("PATH_INFO").value_or("/");
  }
  return conn_->parser.target();
}

// What every request's environ starts with, whatever the protocol: the listener's template
// (PEP 3333 constants), the peer's address, this core's id and a fresh wsgi.input.
void Core::log_app_exception(const char* when) noexcept {
  if (conn_->peer_closed || upgraded_) {
    // The client went away (aiowsgi.ClientDisconnected, or a websocket peer that closed):
    // the app's exception is the consequence, not a bug worth a traceback.
    PyRef type = PyRef::borrow(PyErr_Occurred());
    bool disconnect = type && (PyErr_GivenExceptionMatches(type.get(), PyExc_OSError) ||
                               PyErr_GivenExceptionMatches(type.get(), PyExc_ConnectionError) ||
                               conn_->peer_closed);
    if (disconnect) {
      PyErr_Clear();
      spdlog::info("client disconnected during {} {} (core {})", method(), target(), id_);
      return;
    }
  }
  ++server_->exceptions;
  std::string text = fetch_exception_text();
  spdlog::error("exception {} for {} {} (core {}):\n{}", when, method(), target(), id_, text);
}

// --- Socket I/O inside a core ----------------------------------------------------------------

bool Core::wait_io(CoreState how, double timeout) noexcept {
  // Only this core's greenlet can wait: from the loop's own greenlet the switch below would
  // return at once, forever.
  if (!on_own_greenlet()) return false;
  if (how == CoreState::kWaitRead) {
    if (!server_->watch_readable(conn_)) return false;
  } else if (!server_->watch_writable(conn_)) {
    return false;
  }
  state_ = how;
  io_deadline_ = now_seconds() + (timeout > 0 ? timeout : kSocketTimeout);
  wake_ = WakeReason::kNone;
  while (wake_ == WakeReason::kNone) {
    PyObject* r = switch_out();
    if (r == nullptr) {
      // Thrown in: harakiri (cancelled_), worker shutdown (killed_), or by the app's own
      // callback; either way this wait has failed.
      PyErr_Clear();
      break;
    }
    Py_DECREF(r);
    // Anything but the server's own wake-up (an app callback switching into the wrong
    // greenlet) leaves wake_ unset: keep waiting.
    if (killed_) break;
  }
  state_ = CoreState::kRunning;
  if (how == CoreState::kWaitWrite) server_->unwatch_writable(conn_);
  return wake_ == WakeReason::kReady && !killed_ && !cancelled_;
}

// --- RequestHost: what worker/python/ sees of the request ----------------------------------

namespace {

// *cache when it already holds |text| (an ASCII str's UTF-8 is its own data: no copy is made
// to compare), else a new str of |text| put there. Borrowed; nullptr with an exception set.
PyObject* cached_str(PyRef* cache, std::string_view text) noexcept {
  if (*cache) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(cache->get(), &n);
    if (s != nullptr && std::string_view(s, static_cast<size_t>(n)) == text) return cache->get();
  }
  PyRef fresh = PyRef::steal(PyUnicode_FromStringAndSize(text.data(), std::ssize(text)));
  if (!fresh) return nullptr;
  *cache = std::move(fresh);
  return cache->get();
}

}  // namespace

const RequestParser* Core::http_head() const {
  return conn_ != nullptr && !conn_->uwsgi ? &conn_->parser : nullptr;
}

const UwsgiParser* Core::uwsgi_head() const {
  return conn_ != nullptr ? conn_->uwsgi.get() : nullptr;
}

PyObject* Core::environ_template() const { return server_->environ_template(conn_->listener); }
PyObject* Core::remote_addr() {
  // One str for the worker, not per core: behind a proxy, or from one busy client, thousands
  // of held requests' REMOTE_ADDR are then one object. Never destroyed: the interpreter may be
  // finalized before static destructors run.
  static auto* last = new PyRef;
  return cached_str(last, conn_->remote_addr);
}
PyObject* Core::remote_port() { return cached_str(&remote_port_, conn_->remote_port); }
bool Core::trusted_peer() const { return conn_->trusted_peer; }
bool Core::client_certificate(std::string_view* subject_dn, std::string_view* pem) {
  const TlsPeer* p = conn_->tls ? conn_->tls->peer() : nullptr;
  if (p == nullptr) return false;
  *subject_dn = p->subject_dn;
  *pem = p->cert_pem;
  return true;
}
const IpNetworks& Core::trusted_proxies() const { return server_->trusted_proxies(); }
std::string_view Core::mount() const { return server_->mount(); }
void Core::set_forwarded_client(std::string client) { conn_->forwarded_client = std::move(client); }
bool Core::client_gone() const { return conn_ != nullptr && conn_->peer_closed; }

void Core::release_reader() noexcept {
  if (conn_ != nullptr) server_->unwatch_readable(conn_);
}

bool Core::on_own_greenlet() const noexcept {
  PyObject* g = greenlet::current();
  if (g == nullptr) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(g);  // the running greenlet stays referenced by greenlet's thread state
  return g == greenlet_.get();
}

int Core::connection_fd() const { return conn_ != nullptr ? conn_->fd.get() : -1; }

void Core::mark_upgraded() noexcept {
  upgraded_ = true;
  writer_.set_raw();
  writer_.release_buffers();  // the app's frames go out through send_raw, which needs none
  conn_->upgraded = true;
  server_->unwatch_readable(conn_);
}

bool Core::send_raw(const char* data, size_t len) noexcept {
  iovec iov{const_cast<char*>(data), len};
  return writer_.send_all(&iov, 1);
}

ssize_t Core::recv_raw(std::string* out, bool block, double timeout) noexcept {
  for (;;) {
    if (conn_->buffered() > 0) {
      size_t n = conn_->buffered();
      out->append(conn_->data(), n);
      conn_->consume(n);
      return static_cast<ssize_t>(n);
    }
    if (conn_->peer_closed) return -1;
    ssize_t n = conn_->fill();
    if (n > 0) continue;
    if (n == 0) {
      conn_->peer_closed = true;
      return -1;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      conn_->peer_closed = true;
      return -1;
    }
    if (!block) return 0;
    conn_->release_buffer();  // all consumed: an idle websocket may wait for hours
    if (!wait_io(wait_for_write(*conn_, false) ? CoreState::kWaitWrite : CoreState::kWaitRead,
                 timeout)) {
      if (killed_ || cancelled_) return -1;
      if (wake_ == WakeReason::kTimeout) return 0;
      return -1;
    }
  }
}

}  // namespace aiowsgi::worker
