#include "worker/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>

#include "common/tls_tickets.h"
#include "common/url_prefix.h"
#include "worker/access_log.h"
#include "worker/app_output.h"
#include "worker/control_link.h"
#include "worker/protocol/websocket.h"
#include "worker/python/frame_stack.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/python_module.h"
#include "worker/python/request_context.h"
#include "worker/python/thread_identity.h"
#include "worker/python/uwsgi_module.h"
#include "worker/static_files.h"

namespace aiowsgi::worker {

Server* Server::instance_ = nullptr;

namespace {

// The loader's smallest timeout (config.h): a shorter one could not be judged.
constexpr double kTickSeconds = config::kTimerTickSeconds;
// While draining, how long an idle keep-alive connection may still bring one last request.
constexpr double kDrainIdleGraceSeconds = 1.0;
// How long a leaving worker waits for its websockets to end after their close frames: a client
// answers at once, and their apps' receives fail at once. One whose app waits on something
// else (its own reader, a queue) or whose client stays silent is then cut with the rest.
constexpr double kWebsocketGoodbyeSeconds = 1.0;

// Module-level C callbacks handed to the asyncio loop. Each forwards to the server and never
// lets an exception out: asyncio would only log it, and the state would be half-updated.
PyObject* cb_poll(PyObject*, PyObject*) noexcept {
  // The loop runs as the thread itself. An app that switched into a core in a way no hook sees
  // (greenlet.greenlet.switch(core) unbound) left the core's identity behind: put it back.
  thread_identity::enter(nullptr);
  if (Server* s = Server::instance()) s->on_poll();
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
PyObject* cb_goodbye(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->on_goodbye();
  Py_RETURN_NONE;
}

PyMethodDef kPollDef = {"_aiowsgi_poll", cb_poll, METH_NOARGS, nullptr};
PyMethodDef kWritableDef = {"_aiowsgi_writable", cb_writable, METH_O, nullptr};
PyMethodDef kTickDef = {"_aiowsgi_tick", cb_tick, METH_NOARGS, nullptr};
PyMethodDef kControlDef = {"_aiowsgi_control", cb_control, METH_NOARGS, nullptr};
PyMethodDef kSettleDef = {"_aiowsgi_settle", cb_settle, METH_O, nullptr};
PyMethodDef kGoodbyeDef = {"_aiowsgi_goodbye", cb_goodbye, METH_NOARGS, nullptr};

}  // namespace

bool call_logged(PyObject* fn, const char* what, PyObject* a, PyObject* b, PyObject* c) noexcept {
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

double now_seconds() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Server::Server(const WorkerContext& ctx, PyObject* loop, PyObject* app)
    : ctx_(ctx),
      loop_(PyRef::borrow(loop)),
      app_(PyRef::borrow(app)),
      budget_(static_cast<uint64_t>(std::max<int64_t>(ctx.config->limits.max_requests, 0))) {
  instance_ = this;
  for (const std::string& field : ctx.config->server.add_header) {
    added_headers_.append(field).append("\r\n");  // checked and normalized at config load
  }
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
  } methods[] = {{&calls_.add_reader, "add_reader"},
                 {&calls_.remove_reader, "remove_reader"},
                 {&calls_.add_writer, "add_writer"},
                 {&calls_.remove_writer, "remove_writer"},
                 {&calls_.call_later, "call_later"},
                 {&calls_.call_soon, "call_soon"},
                 {&calls_.stop, "stop"}};
  for (auto& m : methods) {
    *m.slot = PyRef::steal(PyObject_GetAttrString(loop_.get(), m.name));
    if (!*m.slot) return false;
  }
  on_poll_fn_ = PyRef::steal(PyCFunction_New(&kPollDef, nullptr));
  on_writable_fn_ = PyRef::steal(PyCFunction_New(&kWritableDef, nullptr));
  on_tick_fn_ = PyRef::steal(PyCFunction_New(&kTickDef, nullptr));
  on_control_fn_ = PyRef::steal(PyCFunction_New(&kControlDef, nullptr));
  on_settle_fn_ = PyRef::steal(PyCFunction_New(&kSettleDef, nullptr));
  on_goodbye_fn_ = PyRef::steal(PyCFunction_New(&kGoodbyeDef, nullptr));
  if (!on_poll_fn_ || !on_writable_fn_ || !on_tick_fn_ || !on_control_fn_ || !on_settle_fn_ ||
      !on_goodbye_fn_)
    return false;
  if (!readiness_.open()) {
    PyErr_SetFromErrno(PyExc_OSError);
    return false;
  }
  {
    PyRef fd = PyRef::steal(PyLong_FromLong(readiness_.fd()));
    if (!fd) return false;
    PyRef r = PyRef::steal(PyObject_CallFunctionObjArgs(calls_.add_reader.get(), fd.get(),
                                                        on_poll_fn_.get(), nullptr));
    if (!r) return false;
  }
  if (!acceptor_.start()) return false;
  settle_prefix_and_proxies();
  temp_dir_ = config().server.temp_dir.empty() ? default_temp_dir() : config().server.temp_dir;
  if (!load_tls()) return false;
  if (!build_templates()) return false;
  if (!request_context::capture_base()) return false;
  cores_.reserve(static_cast<size_t>(config().server.cores));
  // One small frame-stack chunk per core greenlet, the retired ones included.
  size_t chunks = static_cast<size_t>(config().server.cores) + kMaxRetiredGreenlets + 1;
  if (!frame_stack::init(chunks))
    spdlog::debug("small frame-stack chunks unavailable: cores use CPython's own");
  if (!config().statics.map.empty()) statics_ = std::make_unique<StaticFiles>(this);
  update_date();
  acceptor_.resume();
  if (ctx_.control_fd >= 0) {
    PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.control_fd));
    PyRef r = PyRef::steal(PyObject_CallFunctionObjArgs(calls_.add_reader.get(), fd.get(),
                                                        on_control_fn_.get(), nullptr));
    if (!r) return false;
  }
  schedule_tick();
  return true;
}

namespace {

// A copy of the environ template |d| with room for a request's own keys. New reference.
PyObject* presized_template(PyObject* d) noexcept {
  // PyDict_Copy clones a compact dict's key table as it is, size included. Each request adds
  // 10 keys to the template's 11 (its line, address, core, wsgi.input and Host), more with
  // other headers: with the table the template gets by plain insertion (16 slots, room for
  // 10) every environ grew once more; with 32 slots (room for 21, still str-keyed and small)
  // a request with Host alone fits as copied. CPython sizes a merge into a non-empty dict for
  // the sum of both sizes: seeding the target with one of the template's own items
  // (overwritten by the merge, so no deleted entry that would use up room) gets that table.
  // Room for one more key would take 64 slots, doubling every environ.
  PyRef out = PyRef::steal(PyDict_New());
  if (!out) return nullptr;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  if (PyDict_Next(d, &pos, &key, &value) && PyDict_SetItem(out.get(), key, value) < 0)
    return nullptr;
  if (PyDict_Merge(out.get(), d, 1) < 0) return nullptr;
  return out.release();
}

}  // namespace

void Server::settle_prefix_and_proxies() noexcept {
  Result<IpNetworks> nets = IpNetworks::parse(config().server.forwarded_allow_ips);
  if (nets.ok()) {
    trusted_proxies_ = std::move(nets).value();
  } else {  // the loader checked every element: only a bug gets here; trust nobody then
    spdlog::error("[server] forwarded_allow_ips: {}", nets.status().message());
  }
  mount_ = config().app.mount;
  // gunicorn's rule: SCRIPT_NAME in the environment ([app] env, or the master's own) mounts
  // the app as [app] mount does. Read after [app] env was applied to this process, before
  // any thread of the app could call setenv.
  const char* env = mount_.empty() ? getenv("SCRIPT_NAME") : nullptr;  // NOLINT
  if (env != nullptr && *env != '\0' && !normalize_prefix(env, &mount_)) {
    spdlog::warn("SCRIPT_NAME={} in the environment is not a URL prefix like /app: ignored", env);
    mount_.clear();
  }
}

bool Server::load_tls() noexcept {
  bool https = false;
  for (const ListenSocket& ls : ctx_.sockets) https = https || ls.tls;
  if (!https) return true;
  const config::TlsConfig& t = config().tls;
  Result<SslCtxPtr> ctx = make_tls_context({t.certificate, t.key, t.ca});
  if (!ctx.ok()) {
    // The master checked the same files before forking: they changed in between.
    spdlog::error("{}", ctx.status().message());
    return false;
  }
  tls_ctx_ = std::move(ctx).value();
  // The master said at start which one static files get (config/checks.cpp).
  std::string no_ktls;
  if (t.kernel_tls && kernel_tls_available(&no_ktls))
    SSL_CTX_set_options(tls_ctx_.get(), SSL_OP_ENABLE_KTLS);
  if (!use_shared_tickets(tls_ctx_.get(), t.ticket_key_rotation))
    spdlog::warn("TLS: session tickets are off in this worker (OpenSSL refused the key callback)");
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
        {"HTTPS", ls.tls ? nullptr : Py_None},
        {"wsgi.errors", err_stream},
        {"wsgi.multithread", Py_False},
        {"wsgi.multiprocess", cfg.server.workers > 1 ? Py_True : Py_False},
        {"wsgi.run_once", Py_False},
        // The server frames every body (Content-Length, chunked, the uwsgi packet) and
        // wsgi.input ends where the body does: reading to EOF is safe. Werkzeug and WebOb
        // read a body without CONTENT_LENGTH (chunked) only when this says so, as gunicorn,
        // waitress and mod_wsgi do.
        {"wsgi.input_terminated", Py_True},
        {"wsgi.file_wrapper", fw.get()},
        {"SCRIPT_NAME", nullptr},
        {"SERVER_NAME", nullptr},
        {"SERVER_PORT", nullptr},
    };
    for (auto& it : items) {
      PyRef v;
      if (it.value == nullptr) {
        const char* s = std::string_view(it.key) == "wsgi.url_scheme" ? (ls.tls ? "https" : "http")
                        : std::string_view(it.key) == "HTTPS"         ? "on"
                        : std::string_view(it.key) == "SCRIPT_NAME"   ? mount_.c_str()
                        : std::string_view(it.key) == "SERVER_NAME"   ? server_name.c_str()
                                                                      : server_port.c_str();
        v = PyRef::steal(PyUnicode_FromString(s));
        if (!v) return false;
      } else {
        v = PyRef::borrow(it.value);
      }
      if (v.get() == nullptr || v.get() == Py_None) continue;  // no sys.stderr, no HTTPS
      if (PyDict_SetItemString(d.get(), it.key, v.get()) < 0) return false;
    }
    PyRef sized = PyRef::steal(presized_template(d.get()));
    if (!sized) return false;
    templates_.push_back(std::move(sized));
  }
  return true;
}

// --- Cores between requests ------------------------------------------------------------------

void Server::settle_later(Core* core) noexcept {
  call_logged(calls_.call_soon.get(), "call_soon", on_settle_fn_.get(), core->id_object());
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

// --- Timers, draining ------------------------------------------------------------------------

void Server::schedule_tick() noexcept {
  PyRef delay = PyRef::steal(PyFloat_FromDouble(kTickSeconds));
  if (delay) call_logged(calls_.call_later.get(), "call_later", delay.get(), on_tick_fn_.get());
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
  acceptor_.on_tick(now);
  // Connection deadlines. Collect first: closing mutates the table.
  std::vector<Connection*> expired;
  for (auto& up : conns_) {
    Connection* c = up.get();
    if (c == nullptr) continue;
    if (c->state == ConnState::kBuffering && body_expired(*c, now)) expired.push_back(c);
    // kStatic: a static response whose reader took nothing for the send timeout.
    if ((c->state == ConnState::kReadingHead || c->state == ConnState::kLingering ||
         c->state == ConnState::kStatic) &&
        now >= c->deadline)
      expired.push_back(c);
  }
  for (Connection* c : expired) {
    if (c->state == ConnState::kBuffering) {
      spdlog::info("request body of {} {} from {} not complete in time ({} bytes): 408",
                   head_method(*c), head_target(*c), c->remote_addr, c->body_buffer->size());
      send_error_and_linger(c, 408);
    } else if (c->state == ConnState::kReadingHead && c->head_started) {
      spdlog::debug("request head from {} not complete in time: 408", c->remote_addr);
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
  // Websockets told to close hold the worker only until their moment has passed.
  if ((draining_ || retiring_) && ws_goodbye_ != 0) {
    maybe_finish_drain();
    if (stopping_) return;
  }
  if (draining_ && now >= drain_deadline_) {
    spdlog::warn("graceful timeout: {} request(s) still in flight, stopping anyway", busy_cores_);
    stop_now();
    return;
  }
  send_heartbeat();
  schedule_tick();
}

void Server::drain(DrainReason reason) noexcept {
  if (draining_ || stopping_) return;
  draining_ = true;
  drain_deadline_ = now_seconds() + config().server.graceful_timeout;
  access_log::flush();
  acceptor_.pause();
  // Idle keep-alive connections are not cut at once: a client may be sending its next request
  // right now, and closing under it would fail that request. Each gets a short grace; a
  // request that arrives is served with "Connection: close" (ResponseWriter::build_head).
  double grace = now_seconds() + kDrainIdleGraceSeconds;
  for (auto& up : conns_) {
    if (up && up->state == ConnState::kReadingHead && !up->head_started)
      up->deadline = std::min(up->deadline, grace);
  }
  // A websocket never ends by itself: left open, it would hold the worker for the whole
  // graceful_timeout and then see the connection cut without a close frame.
  close_websockets(reason == DrainReason::kRestart ? websocket::kCloseServiceRestart
                                                   : websocket::kCloseGoingAway);
  maybe_finish_drain();
}

void Server::maybe_finish_drain() noexcept {
  if (stopping_) return;
  if (busy_cores_ == 0 && queue_.empty() && open_connections_ == 0) {
    stop_now();
  } else if (only_websockets_left()) {
    spdlog::info("{} websocket(s) still open {:.0f} s after their close frame: exiting anyway",
                 open_connections_, kWebsocketGoodbyeSeconds);
    stop_now();
  }
}

void Server::close_websockets(uint16_t code) noexcept {
  if (ws_goodbye_ != 0) return;
  ws_goodbye_ = code;
  ws_goodbye_deadline_ = now_seconds() + kWebsocketGoodbyeSeconds;
  // On the loop's own turn: retire() may run inside a core (a pipelined request), and a core
  // woken from there would switch back to the loop, not to the caller.
  call_logged(calls_.call_soon.get(), "call_soon", on_goodbye_fn_.get());
}

void Server::on_goodbye() noexcept {
  if (stopping_) return;  // shutdown() says goodbye itself
  websocket_goodbye(ws_goodbye_);
  // A core blocked in websocket_recv() returns from it now, with OSError. (Index, not
  // iterator: a woken core may serve on, though it never adds cores.)
  for (size_t i = 0; i < cores_.size(); ++i) {
    Core* c = cores_[i].get();
    if (c->upgraded() && c->state() == CoreState::kWaitRead) c->wake(WakeReason::kShutdown);
  }
  maybe_finish_drain();
}

bool Server::only_websockets_left() const noexcept {
  if (ws_goodbye_ == 0 || now_seconds() < ws_goodbye_deadline_ || !queue_.empty()) return false;
  for (const auto& c : conns_) {
    if (c && !c->upgraded) return false;
  }
  return true;
}

void Server::stop_now() noexcept {
  if (stopping_) return;
  stopping_ = true;
  acceptor_.pause();
  PyRef r = PyRef::steal(PyObject_CallNoArgs(calls_.stop.get()));
  if (!r) spdlog::error("loop.stop() failed: {}", fetch_exception_text());
}

void Server::shutdown() noexcept {
  acceptor_.log_totals();
  spdlog::debug("small frame-stack chunks: {} in use, {} cores went deeper", frame_stack::in_use(),
                frame_stack::overflows());
  // An immediate stop (QUIT, or graceful_timeout passed) still tells websocket clients why.
  websocket_goodbye(ws_goodbye_ != 0 ? ws_goodbye_ : websocket::kCloseGoingAway);
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
  if (readiness_.fd() >= 0) {
    PyRef fd = PyRef::steal(PyLong_FromLong(readiness_.fd()));
    if (fd) call_logged(calls_.remove_reader.get(), "remove_reader", fd.get());
  }
}

void Server::log_stacks() noexcept {
  // On the loop's greenlet: every core in a request is suspended now, its stack complete.
  // The code that held the loop when the signal came was dumped by faulthandler already.
  // An operator asked for these: logged at info, or at the [log] level when that is higher,
  // so that they show as faulthandler's lines before them do (the app's stderr is logged
  // whatever the level). Never at "off", which would print them with logging turned off.
  auto level = std::max(spdlog::level::info, spdlog::default_logger()->level());
  if (level == spdlog::level::off) level = spdlog::level::critical;
  // faulthandler's dump is in the app-output pipe already (written before the handler chained
  // to the loop's): logged now, it comes first instead of interleaving with what follows.
  app_output::flush();
  double now = now_seconds();
  size_t busy = 0;
  for (auto& core : cores_) busy += core->in_request() ? 1 : 0;
  spdlog::log(level, "SIGUSR2: {} request{} in flight{}", busy, busy == 1 ? "" : "s",
              busy == 0 ? "" : "; their stacks follow");
  for (auto& core : cores_) {
    if (core->in_request()) spdlog::log(level, "{}", core->describe_stack(now));
  }
}

void Server::on_control() noexcept {
  ControlLink::Command cmd;
  DrainReason reason = DrainReason::kShutdown;
  while (ControlLink::receive(ctx_.control_fd, &cmd, &reason)) {
    switch (cmd) {
      case ControlLink::Command::kDrain:
        if (!draining_)
          spdlog::info("draining on the master's request ({})", drain_reason_name(reason));
        drain(reason);
        break;
      case ControlLink::Command::kStop:
        stop_now();
        break;
      case ControlLink::Command::kReopenLogs:
        ControlLink::reopen_logs();
        break;
      case ControlLink::Command::kMasterGone:
        spdlog::warn("the master went away; stopping");
        drain(DrainReason::kShutdown);
        // Nothing more will come: stop watching the dead pipe.
        {
          PyRef fd = PyRef::steal(PyLong_FromLong(ctx_.control_fd));
          if (fd) call_logged(calls_.remove_reader.get(), "remove_reader", fd.get());
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
