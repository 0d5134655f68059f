#include "worker/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <unordered_map>

#include "common/stats_board.h"
#include "common/unique_fd.h"
#include "worker/access_log.h"
#include "worker/connection.h"
#include "worker/protocol/header_fields.h"
#include "worker/protocol/request_target.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/python_module.h"
#include "worker/python/request_bound.h"
#include "worker/python/wsgi_input.h"
#include "worker/server.h"

namespace aiowsgi::worker {

std::string error_response(int status);  // server.cpp

namespace {

// Seconds a core may wait for its client to send or accept bytes before the request fails.
constexpr double kSocketTimeout = 60;
// Unread request body the server reads and discards to keep a connection alive; past it the
// connection is closed instead.
constexpr uint64_t kMaxDrainBytes = 1 << 20;
// Bodies up to this size are copied next to the head and sent with one send().
constexpr size_t kCoalesceBytes = 16384;

PyMethodDef kRunDef = {"_aiowsgi_core", Core::run, METH_VARARGS, nullptr};

Core* core_from(PyObject* capsule) {
  return static_cast<Core*>(PyCapsule_GetPointer(capsule, nullptr));
}

// Interned environ keys and values reused by every request.
struct Strings {
  PyObject* request_method;
  PyObject* path_info;
  PyObject* query_string;
  PyObject* request_uri;
  PyObject* server_protocol;
  PyObject* remote_addr;
  PyObject* remote_port;
  PyObject* content_type;
  PyObject* content_length;
  PyObject* wsgi_input;
  PyObject* aiowsgi_core;
  PyObject* http10;
  PyObject* http11;
  PyObject* close;
  std::unordered_map<std::string, PyObject*> methods;
  std::unordered_map<std::string, PyObject*> header_keys;  // lower-case name -> environ key
};

Strings* strings() {
  static Strings* s = [] {
    auto* t = new Strings;
    auto mk = [](const char* v) { return PyUnicode_InternFromString(v); };
    t->request_method = mk("REQUEST_METHOD");
    t->path_info = mk("PATH_INFO");
    t->query_string = mk("QUERY_STRING");
    t->request_uri = mk("REQUEST_URI");
    t->server_protocol = mk("SERVER_PROTOCOL");
    t->remote_addr = mk("REMOTE_ADDR");
    t->remote_port = mk("REMOTE_PORT");
    t->content_type = mk("CONTENT_TYPE");
    t->content_length = mk("CONTENT_LENGTH");
    t->wsgi_input = mk("wsgi.input");
    t->aiowsgi_core = mk("aiowsgi.core");
    t->http10 = mk("HTTP/1.0");
    t->http11 = mk("HTTP/1.1");
    t->close = mk("close");
    for (const char* m : {"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
      t->methods[m] = mk(m);
    return t;
  }();
  return s;
}

// The environ key for a request header ("HTTP_X_FORWARDED_FOR"), cached. A new reference,
// or nullptr for a name the environ cannot carry unambiguously (an underscore would collide
// with the dash spelling, the spoofing hole nginx and gunicorn close the same way).
PyObject* header_key(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) {
    if (ch == '_') return nullptr;
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  auto& cache = strings()->header_keys;
  auto it = cache.find(lower);
  if (it != cache.end()) {
    Py_INCREF(it->second);
    return it->second;
  }
  std::string key = "HTTP_";
  for (char ch : lower) key += ch == '-' ? '_' : static_cast<char>(toupper(ch));
  PyObject* k = PyUnicode_DecodeLatin1(key.data(), static_cast<Py_ssize_t>(key.size()), nullptr);
  if (k == nullptr) return nullptr;
  // Bounded: a client inventing header names must not grow the cache forever.
  if (cache.size() < 512) {
    PyUnicode_InternInPlace(&k);
    Py_INCREF(k);
    cache.emplace(std::move(lower), k);
  }
  return k;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// d[key] = value, taking the reference to |value| (which may be nullptr after a failed
// constructor: then false, with that constructor's exception set).
bool dict_set_steal(PyObject* d, PyObject* key, PyObject* value) {
  if (value == nullptr) return false;
  int rc = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  return rc == 0;
}

}  // namespace

Core::Core(Server* server, int id) : server_(server), id_(id) {
  id_obj_ = PyRef::steal(PyLong_FromLong(id));
}

Core::~Core() = default;

PyObject* Core::run(PyObject* self, PyObject*) noexcept {
  Core* core = core_from(self);
  if (core == nullptr) return nullptr;
  // This greenlet's own copy: the lease outlives the greenlet's tie to the core.
  std::shared_ptr<Lease> lease = core->lease_;
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
    PyRef g = PyRef::steal(greenlet::create(run.get(), server_->main_greenlet()));
    if (!g) return false;
    // Lets aiowsgi.core_id() and await_() recognise a core from inside the app.
    if (PyObject_SetAttrString(g.get(), "_aiowsgi_core", id_obj_.get()) < 0) return false;
    greenlet_ = std::move(g);
    lease_ = std::make_shared<Lease>();
    lease_->core_id = id_;
  }
  // The one resume a parked greenlet accepts (park() checks it).
  entering_ = true;
  // The marker tells the master which request holds the loop if it never switches back.
  score_running_core(server_->context().score, id_);
  PyObject* r = greenlet::switch_to(greenlet_.get());
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
  PyObject* r = greenlet::switch_to(greenlet_.get());
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
  PyObject* r = greenlet::kill(greenlet_.get());
  if (r == nullptr) PyErr_Clear();
  Py_XDECREF(r);
  state_ = CoreState::kFree;
}

void Core::cancel(double age) noexcept {
  if (!greenlet_ || !greenlet::active(greenlet_.get()) || conn_ == nullptr) return;
  cancelled_ = true;
  spdlog::error("harakiri: {} {} on core {} cancelled after {:.1f} s", method(), target(), id_,
                age);
  ++server_->harakiri_count;
  PyObject* r = greenlet::kill(greenlet_.get());
  if (r == nullptr) {
    spdlog::error("core {} raised out of its greenlet: {}", id_, fetch_exception_text());
    return;
  }
  Py_DECREF(r);
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
          if (!park(lease, CoreState::kSettling)) return;
          break;
      }
      bool keep = handle_request();
      ++serial_;  // whatever the app kept of that request is stale from here on
      retire_pending_ = cancelled_ || disconnect_cancelled_;
      request_done(server_, conn_, id_, status_code_);  // StatsBoard + access log
      if (killed_) return;
      Connection* conn = conn_;
      if (!keep) {
        conn_ = nullptr;
        server_->release_connection(conn, false);
        break;
      }
      // A pipelined request may already be buffered: serve it here, in order.
      conn->parser.reset();
      if (conn->buffered() > 0) {
        size_t consumed = 0;
        auto r = conn->parser.feed_head(conn->data(), conn->buffered(), &consumed);
        conn->consume(consumed);
        if (r == RequestParser::Result::kHeadComplete ||
            r == RequestParser::Result::kMessageComplete) {
          // A pipelined static-file request leaves the core: the loop answers it (it is not
          // handed to the app, so max_requests does not count it).
          if (server_->serve_static(conn)) {
            conn_ = nullptr;
            break;
          }
          if (server_->admit(conn)) continue;
          conn_ = nullptr;
          server_->release_connection(conn, false);
          break;
        }
        if (r == RequestParser::Result::kError) {
          conn_ = nullptr;
          conn->core = nullptr;
          server_->reject(conn, conn->parser.error_status());
          break;
        }
      }
      conn_ = nullptr;
      server_->release_connection(conn, true);
    }
    if (Connection* next = server_->next_queued()) {
      conn_ = next;
      next->core = this;
      next->state = ConnState::kInCore;
      continue;
    }
    if (retire_pending_) retire(lease);
    if (!park(lease, CoreState::kFree)) return;
  }
}

bool Core::park(Lease& lease, CoreState how) noexcept {
  state_ = how;
  if (how == CoreState::kFree) {
    server_->core_idle(this);
  } else {
    server_->settle_later(this);
  }
  for (;;) {
    PyObject* r = greenlet::switch_to(server_->main_greenlet());
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

bool Core::handle_request() noexcept {
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
  body_.clear();
  body_pos_ = 0;
  body_deadline_.reset();
  sent_continue_ = false;
  status_code_ = 0;
  headers_set_ = headers_sent_ = chunked_ = false;
  has_content_length_ = false;
  content_length_ = body_sent_ = 0;
  error_status_ = 0;
  head_request_ = method() == "HEAD";
  // A uwsgi-protocol peer (nginx's uwsgi_pass) reads the response until the connection closes.
  keep_alive_ = !conn_->uwsgi && p.keep_alive() && !p.upgrade() && !server_->draining();
  no_body_status_ = false;

  if (!rebind_to_request(&start_response_, py_start_response, this, serial_) ||
      !rebind_to_request(&write_, py_write, this, serial_)) {
    spdlog::error("binding start_response failed: {}", fetch_exception_text());
    send_simple_error(500);
    return false;
  }
  PyRef environ = PyRef::steal(build_environ());
  if (!environ) {
    spdlog::error("building the environ failed: {}", fetch_exception_text());
    send_simple_error(500);
    return false;
  }
  PyRef result = PyRef::steal(
      PyObject_CallFunctionObjArgs(server_->app(), environ.get(), start_response_.get(), nullptr));
  if (!result) {
    if (cancelled_) return finish_cancelled();
    // The server's own GreenletExit (shutdown). One the app raises itself is an app
    // exception like any other.
    if (killed_) {
      PyErr_Clear();
      return false;
    }
    log_app_exception("calling the application");
    if (!headers_sent_) send_simple_error(error_status_ != 0 ? error_status_ : 500);
    return false;
  }
  // A websocket app has already spoken on the socket: its return value is not a response.
  bool ok = upgraded_ ? false : respond_from_result(result.get());
  if (cancelled_) {
    PyErr_Clear();
    ok = false;
  }
  // PEP 3333: close() is called whatever happened, also when the client went away.
  if (PyObject_HasAttr(result.get(), strings()->close)) {
    PyRef r = PyRef::steal(PyObject_CallMethodNoArgs(result.get(), strings()->close));
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
  return finish_request_body() && keep_alive_;
}

bool Core::finish_cancelled() noexcept {
  PyErr_Clear();
  keep_alive_ = false;
  if (!headers_sent_ && !conn_->peer_closed) send_simple_error(504);
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
PyObject* Core::environ_base() noexcept {
  Strings* s = strings();
  PyRef env = PyRef::steal(PyDict_Copy(server_->environ_template(conn_->listener)));
  if (!env) return nullptr;
  PyObject* d = env.get();
  Py_INCREF(conn_->remote_addr.get());
  if (!dict_set_steal(d, s->remote_addr, conn_->remote_addr.get())) return nullptr;
  Py_INCREF(conn_->remote_port.get());
  if (!dict_set_steal(d, s->remote_port, conn_->remote_port.get())) return nullptr;
  Py_INCREF(id_obj_.get());
  if (!dict_set_steal(d, s->aiowsgi_core, id_obj_.get())) return nullptr;
  if (!dict_set_steal(d, s->wsgi_input, new_input(this))) return nullptr;
  return env.release();
}

// The environ of a uwsgi-protocol request: the peer (nginx) already sends CGI variables, so
// they are taken as they are, over the listener's template and this connection's defaults.
PyObject* Core::build_uwsgi_environ() noexcept {
  PyRef env = PyRef::steal(environ_base());
  if (!env) return nullptr;
  PyObject* d = env.get();
  auto set = [d](PyObject* key, PyObject* value) { return dict_set_steal(d, key, value); };
  const UwsgiParser& u = *conn_->uwsgi;
  for (size_t i = 0; i < u.var_count(); ++i) {
    std::string_view n = u.var_name(i), v = u.var_value(i);
    if (!is_cgi_var_name(n)) continue;                 // wsgi.input & co. stay the server's
    if (n == "CONTENT_LENGTH" && v.empty()) continue;  // nginx sends it empty without a body
    if (n == "CONTENT_TYPE" && v.empty()) continue;
    PyRef key =
        PyRef::steal(PyUnicode_DecodeLatin1(n.data(), static_cast<Py_ssize_t>(n.size()), nullptr));
    if (!key) return nullptr;
    if (!set(key.get(),
             PyUnicode_DecodeLatin1(v.data(), static_cast<Py_ssize_t>(v.size()), nullptr)))
      return nullptr;
  }
  auto https = u.find("HTTPS");
  auto scheme = u.find("UWSGI_SCHEME");
  if ((https && (*https == "on" || *https == "1")) || (scheme && *scheme == "https")) {
    PyRef k = PyRef::steal(PyUnicode_FromString("wsgi.url_scheme"));
    if (!k || !set(k.get(), PyUnicode_FromString("https"))) return nullptr;
  }
  return env.release();
}

PyObject* Core::build_environ() noexcept {
  if (conn_->uwsgi) return build_uwsgi_environ();
  Strings* s = strings();
  RequestParser& p = conn_->parser;
  PyRef env = PyRef::steal(environ_base());
  if (!env) return nullptr;
  PyObject* d = env.get();
  auto set = [d](PyObject* key, PyObject* value) { return dict_set_steal(d, key, value); };
  auto latin1 = [](std::string_view v) {
    return PyUnicode_DecodeLatin1(v.data(), static_cast<Py_ssize_t>(v.size()), nullptr);
  };
  std::string_view method = p.method();
  auto mit = s->methods.find(std::string(method));
  PyObject* m = mit != s->methods.end() ? (Py_INCREF(mit->second), mit->second) : latin1(method);
  if (!set(s->request_method, m)) return nullptr;
  std::string path;
  percent_decode(p.path(), &path);
  if (!set(s->path_info, latin1(path))) return nullptr;
  if (!set(s->query_string, latin1(p.query()))) return nullptr;
  if (!set(s->request_uri, latin1(p.target()))) return nullptr;
  PyObject* proto = p.http_minor() >= 1 ? s->http11 : s->http10;
  Py_INCREF(proto);
  if (!set(s->server_protocol, proto)) return nullptr;
  // Repeated fields are joined in C++ first, one Python str per name: joining str by str
  // would copy the value so far on every repeat (quadratic in the head's size).
  static JoinedHeaders joined;  // the worker's only thread; keeps its capacity across requests
  joined.group(p);
  for (const JoinedHeaders::Field& field : joined.fields()) {
    std::string_view name = field.name, value = field.value;
    PyObject* key;
    if (iequals(name, "content-type")) {
      key = s->content_type;
      Py_INCREF(key);
    } else if (iequals(name, "content-length")) {
      if (p.chunked()) continue;  // SPEC: absent for a chunked body
      key = s->content_length;
      Py_INCREF(key);
    } else {
      key = header_key(name);
      if (key == nullptr) {
        if (PyErr_Occurred()) return nullptr;
        continue;
      }
    }
    PyRef k = PyRef::steal(key);
    if (!set(key, latin1(value))) return nullptr;
  }
  if (std::string_view authority = p.authority(); !authority.empty()) {
    // An absolute-form target names the host itself; RFC 9112 3.2.2: it replaces Host.
    PyRef key = PyRef::steal(header_key("host"));
    if (!key || !set(key.get(), latin1(authority))) return nullptr;
  }
  return env.release();
}

// --- start_response and write ----------------------------------------------------------------

PyObject* Core::py_start_response(PyObject* self, PyObject* const* args, size_t nargsf,
                                  PyObject* kwnames) noexcept {
  Core* core = bound_core(self, "start_response");
  if (core == nullptr) return nullptr;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject* status = nullptr;
  PyObject* headers = nullptr;
  PyObject* exc_info = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 0) status = args[0];
  if (nargs > 1) headers = args[1];
  if (nargs > 2) exc_info = args[2];
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    const char* k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, i));
    PyObject* v = args[nargs + i];
    if (k && strcmp(k, "status") == 0)
      status = v;
    else if (k && strcmp(k, "response_headers") == 0)
      headers = v;
    else if (k && strcmp(k, "headers") == 0)
      headers = v;
    else if (k && strcmp(k, "exc_info") == 0)
      exc_info = v;
    else {
      PyErr_Format(PyExc_TypeError, "start_response() got an unexpected keyword argument '%s'",
                   k ? k : "?");
      return nullptr;
    }
  }
  if (nargs > 3 || status == nullptr || headers == nullptr) {
    PyErr_SetString(PyExc_TypeError,
                    "start_response() takes status, response_headers and optional exc_info");
    return nullptr;
  }
  if (!core->start_response_impl(status, headers, exc_info)) return nullptr;
  Py_INCREF(core->write_.get());
  return core->write_.get();
}

bool Core::start_response_impl(PyObject* status, PyObject* headers, PyObject* exc_info) noexcept {
  if (exc_info != Py_None) {
    if (headers_sent_) {
      // PEP 3333: too late to change the response: re-raise the app's exception.
      if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
        return false;
      }
      PyObject* t = PyTuple_GET_ITEM(exc_info, 0);
      PyObject* v = PyTuple_GET_ITEM(exc_info, 1);
      PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
      Py_INCREF(t);
      Py_INCREF(v);
      Py_INCREF(tb);
      PyErr_Restore(t, v, tb);
      return false;
    }
  } else if (headers_set_) {
    PyErr_SetString(PyExc_AssertionError,
                    "start_response() called again without exc_info (PEP 3333)");
    return false;
  }
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "status must be a str such as '200 OK'");
    return false;
  }
  Py_ssize_t slen;
  const char* st = PyUnicode_AsUTF8AndSize(status, &slen);
  if (st == nullptr) return false;
  // Validated and copied now: what the app does to its objects later never reaches the wire.
  staged_.reset();
  if (HeadError e = staged_.set_status(std::string_view(st, static_cast<size_t>(slen)));
      e != HeadError::kOk) {
    PyErr_Format(PyExc_ValueError, "invalid status line %R: %s", status, head_error_text(e));
    return false;
  }
  if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
    PyErr_SetString(PyExc_TypeError, "response_headers must be a list of (name, value) tuples");
    return false;
  }
  // No Python code runs in this loop (only on its error paths, which leave it), so the
  // list cannot change under it.
  Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyRef item = PyRef::borrow(PySequence_Fast_GET_ITEM(headers, i));
    if (!PyTuple_Check(item.get()) || PyTuple_GET_SIZE(item.get()) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item.get(), 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item.get(), 1))) {
      PyErr_Format(PyExc_TypeError, "response header %R is not a (str, str) tuple", item.get());
      return false;
    }
    PyObject* name_obj = PyTuple_GET_ITEM(item.get(), 0);
    PyObject* value_obj = PyTuple_GET_ITEM(item.get(), 1);
    Py_ssize_t nl, vl;
    const char* name = PyUnicode_AsUTF8AndSize(name_obj, &nl);
    const char* value = PyUnicode_AsUTF8AndSize(value_obj, &vl);
    if (name == nullptr || value == nullptr) return false;
    HeadError e = staged_.add_header(std::string_view(name, static_cast<size_t>(nl)),
                                     std::string_view(value, static_cast<size_t>(vl)));
    switch (e) {
      case HeadError::kOk:
        continue;
      case HeadError::kHeaderName:
        PyErr_Format(PyExc_ValueError, "invalid response header name %R", name_obj);
        break;
      case HeadError::kHeaderValue:
        // Never sent: a CR or LF here would let the app (or its input) split the response.
        PyErr_Format(PyExc_ValueError, "response header %R has a CR, LF or NUL in its value",
                     name_obj);
        break;
      case HeadError::kContentLength:
      case HeadError::kDuplicateContentLength:
        PyErr_Format(PyExc_ValueError, "invalid Content-Length %R: %s", value_obj,
                     head_error_text(e));
        break;
      default:
        PyErr_SetString(PyExc_ValueError, head_error_text(e));
        break;
    }
    return false;
  }
  std::swap(head_, staged_);
  status_code_ = head_.status_code();
  no_body_status_ = head_.no_body_status();
  has_content_length_ = head_.has_content_length();
  content_length_ = head_.content_length();
  if (head_.wants_close()) keep_alive_ = false;
  headers_set_ = true;
  return true;
}

PyObject* Core::py_write(PyObject* self, PyObject* const* args, size_t nargsf,
                         PyObject* kwnames) noexcept {
  Core* core = bound_core(self, "write");
  if (core == nullptr) return nullptr;
  if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0)) {
    PyErr_SetString(PyExc_TypeError, "write() takes exactly one argument, the bytes to send");
    return nullptr;
  }
  PyObject* data = args[0];
  if (!core->on_own_greenlet()) {
    // Sending may have to wait for the socket, and only the request's own core can wait.
    PyErr_SetString(PyExc_RuntimeError,
                    "write() called outside its request's core (from a loop callback or "
                    "another greenlet)");
    return nullptr;
  }
  if (!core->headers_set_) {
    PyErr_SetString(PyExc_AssertionError, "write() called before start_response()");
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  bool ok = core->write_body(static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
  PyBuffer_Release(&view);
  if (!ok) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_OSError, "client disconnected");
    return nullptr;
  }
  Py_RETURN_NONE;
}

// --- Response ---------------------------------------------------------------------------------

// Assembles the response head into out_ (not sent yet) from the copy start_response made.
// |known_length|: the whole body's length when the server knows it (a list response, a
// file), or -1.
bool Core::build_head(int64_t known_length) noexcept {
  out_.clear();
  HeadOptions o;
  // uwsgi peers get close-delimited bodies, never chunked framing.
  o.http11 = !conn_->uwsgi && conn_->parser.http_minor() >= 1;
  o.head_request = head_request_;
  // A draining worker (reload, stop, recycling) tells keep-alive clients to reconnect: their
  // next request then goes to a worker that is staying. So does one whose max_requests
  // cannot cover another request on this connection.
  o.keep_alive = keep_alive_ && server_->keep_alive_allowed(conn_);
  o.known_length = known_length;
  o.date = server_->date_header();
  HeadPlan plan = append_head(head_, o, &out_);
  chunked_ = plan.framing == Framing::kChunked;
  if (plan.framing == Framing::kContentLength) {
    has_content_length_ = true;
    content_length_ = plan.content_length;
  }
  keep_alive_ = plan.keep_alive;
  headers_sent_ = true;
  return true;
}

bool Core::write_body(const char* data, size_t len) noexcept {
  bool head_pending = !headers_sent_;
  if (head_pending) build_head(-1);
  bool send_body = !head_request_ && !no_body_status_ && len > 0;
  if (send_body && has_content_length_) {
    uint64_t room = content_length_ - std::min(content_length_, body_sent_);
    if (len > room) {
      if (room == 0 || body_sent_ + len > content_length_)
        spdlog::warn("app sent more than its Content-Length ({} bytes); truncated",
                     content_length_);
      len = static_cast<size_t>(room);
      keep_alive_ = false;
      send_body = len > 0;
    }
  }
  if (!send_body) {
    if (!head_pending) return true;
    iovec iov{out_.data(), out_.size()};
    return send_all(&iov, 1);
  }
  body_sent_ += len;
  std::string* out = &out_;
  if (!head_pending) out_.clear();
  if (chunked_) append_chunk_size(out, len);
  if (len <= kCoalesceBytes) {
    out->append(data, len);
    if (chunked_) out->append("\r\n");
    iovec iov{out->data(), out->size()};
    return send_all(&iov, 1);
  }
  static char crlf[] = "\r\n";
  iovec iov[3] = {{out->data(), out->size()}, {const_cast<char*>(data), len}, {crlf, 2}};
  return send_all(iov, chunked_ ? 3 : 2);
}

bool Core::finish_body() noexcept {
  if (!headers_sent_) {
    // Nothing was written: an empty body of known length.
    build_head(no_body_status_ ? -1 : 0);
    iovec iov{out_.data(), out_.size()};
    if (!send_all(&iov, 1)) return false;
  }
  if (chunked_) {
    static char last[] = "0\r\n\r\n";
    iovec iov{last, 5};
    if (!send_all(&iov, 1)) return false;
  }
  if (has_content_length_ && body_sent_ < content_length_ && !head_request_ && !no_body_status_) {
    spdlog::warn("app sent {} bytes of its declared Content-Length {}; closing the connection",
                 body_sent_, content_length_);
    keep_alive_ = false;
    return false;
  }
  return true;
}

bool Core::respond_from_result(PyObject* result) noexcept {
  // Fast path: a list or tuple of bytes with start_response already called. The length is
  // known, so the response gets a Content-Length and goes out in one send when small.
  if ((PyList_CheckExact(result) || PyTuple_CheckExact(result)) && headers_set_ && !headers_sent_) {
    PyObject* seq = result;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    size_t total = 0;
    bool all_bytes = true;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
      if (!PyBytes_Check(item)) {
        all_bytes = false;
        break;
      }
      total += static_cast<size_t>(PyBytes_GET_SIZE(item));
    }
    if (all_bytes && n <= 64) {
      build_head(static_cast<int64_t>(total));
      bool send_body = !head_request_ && !no_body_status_;
      if (has_content_length_ && total > content_length_) {
        spdlog::warn("app sent more than its Content-Length ({} bytes); truncated",
                     content_length_);
        keep_alive_ = false;
      }
      uint64_t room = has_content_length_ ? content_length_ : total;
      if (!send_body) room = 0;
      if (total <= kCoalesceBytes) {
        for (Py_ssize_t i = 0; i < n && room > 0; ++i) {
          PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
          size_t len = std::min<uint64_t>(static_cast<size_t>(PyBytes_GET_SIZE(item)), room);
          out_.append(PyBytes_AS_STRING(item), len);
          room -= len;
          body_sent_ += len;
        }
        iovec iov{out_.data(), out_.size()};
        if (!send_all(&iov, 1)) return false;
      } else {
        iovec iov[65];
        // send_all may suspend this core, and the app (a loop callback) may then empty its
        // list: the items stay referenced here for as long as their bytes are in flight.
        PyRef held[64];
        int cnt = 0;
        iov[cnt++] = {out_.data(), out_.size()};
        for (Py_ssize_t i = 0; i < n && room > 0; ++i) {
          PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
          held[i] = PyRef::borrow(item);
          size_t len = std::min<uint64_t>(static_cast<size_t>(PyBytes_GET_SIZE(item)), room);
          iov[cnt++] = {PyBytes_AS_STRING(item), len};
          room -= len;
          body_sent_ += len;
        }
        if (!send_all(iov, cnt)) return false;
      }
      return finish_body();
    }
  }
  // wsgi.file_wrapper around a real file: sendfile.
  if (is_file_wrapper(result) && headers_set_ && !headers_sent_) {
    int fd = -1;
    PyRef filelike = PyRef::steal(PyObject_GetAttrString(result, "filelike"));
    if (filelike) {
      PyRef fileno = PyRef::steal(PyObject_CallMethod(filelike.get(), "fileno", nullptr));
      if (fileno) fd = static_cast<int>(PyLong_AsLong(fileno.get()));
    }
    PyErr_Clear();
    // Our own descriptor for the file: the app may close its file object from a loop callback
    // while this core is suspended in sendfile(), and the number could then be reused for
    // another request's socket or file.
    UniqueFd own(fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1);
    fd = own.get();
    struct stat st;
    off_t offset = fd >= 0 ? lseek(fd, 0, SEEK_CUR) : -1;
    if (fd >= 0 && offset >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      uint64_t count = st.st_size > offset ? static_cast<uint64_t>(st.st_size - offset) : 0;
      if (has_content_length_) count = std::min(count, content_length_);
      build_head(static_cast<int64_t>(count));
      iovec iov{out_.data(), out_.size()};
      if (!send_all(&iov, 1)) return false;
      if (!head_request_ && !no_body_status_) {
        if (!send_file(fd, offset, count)) return false;
        body_sent_ += count;
      }
      return finish_body();
    }
  }
  return iterate_result(result);
}

bool Core::iterate_result(PyObject* result) noexcept {
  PyRef it = PyRef::steal(PyObject_GetIter(result));
  if (!it) {
    log_app_exception("iterating the response");
    if (!headers_sent_) send_simple_error(500);
    return false;
  }
  for (;;) {
    PyRef item = PyRef::steal(PyIter_Next(it.get()));
    if (!item) break;
    if (!headers_set_) {
      PyErr_SetString(PyExc_AssertionError,
                      "the response iterable yielded before start_response() was called");
      break;
    }
    if (!PyBytes_Check(item.get())) {
      PyErr_Format(PyExc_TypeError, "the response iterable yielded %.200s, not bytes",
                   Py_TYPE(item.get())->tp_name);
      break;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(item.get());
    if (len == 0) continue;  // PEP 3333: an empty item must not send the head early
    if (!write_body(PyBytes_AS_STRING(item.get()), static_cast<size_t>(len))) {
      keep_alive_ = false;
      if (PyErr_Occurred()) PyErr_Clear();
      return false;  // the client went away: stop iterating (close() still runs)
    }
  }
  if (PyErr_Occurred()) {
    if (cancelled_) return false;
    if (killed_) {
      PyErr_Clear();
      return false;
    }
    log_app_exception("iterating the response");
    keep_alive_ = false;
    if (!headers_sent_) send_simple_error(error_status_ != 0 ? error_status_ : 500);
    return false;  // after the head: the connection closes, the client sees a cut response
  }
  if (!headers_set_) {
    spdlog::error("application returned without calling start_response()");
    send_simple_error(500);
    return false;
  }
  return finish_body();
}

bool Core::send_simple_error(int status) noexcept {
  keep_alive_ = false;
  status_code_ = status;  // for the access log and the status-class counters
  std::string r = error_response(status);
  headers_sent_ = true;
  iovec iov{r.data(), r.size()};
  return send_all(&iov, 1);
}

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
    PyObject* r = greenlet::switch_to(server_->main_greenlet());
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

bool Core::send_all(iovec* iov, int iovcnt) noexcept {
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(std::min(iovcnt, IOV_MAX));
    ssize_t n = sendmsg(conn_->fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_io(CoreState::kWaitWrite)) {
          keep_alive_ = false;
          conn_->peer_closed = true;
          return false;
        }
        continue;
      }
      keep_alive_ = false;
      conn_->peer_closed = true;
      score_write_error(server_->context().score, id_);
      return false;
    }
    server_->tx_bytes += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

bool Core::send_file(int fd, off_t offset, uint64_t count) noexcept {
  while (count > 0) {
    ssize_t n = sendfile(conn_->fd, fd, &offset, std::min<uint64_t>(count, 1 << 20));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!wait_io(CoreState::kWaitWrite)) return false;
        continue;
      }
      keep_alive_ = false;
      return false;
    }
    if (n == 0) {  // the file shrank under us: the declared length cannot be met
      keep_alive_ = false;
      return false;
    }
    server_->tx_bytes += static_cast<uint64_t>(n);
    count -= static_cast<uint64_t>(n);
  }
  return true;
}

// --- Raw connection access -------------------------------------------------------------------

Core* Core::current() noexcept {
  Server* server = Server::instance();
  if (server == nullptr) return nullptr;
  PyRef g = PyRef::steal(greenlet::current());
  if (!g) {
    PyErr_Clear();
    return nullptr;
  }
  PyObject* id = PyObject_GetAttrString(g.get(), "_aiowsgi_core");
  if (id == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  long n = PyLong_AsLong(id);
  Py_DECREF(id);
  Core* core = server->core(static_cast<int>(n));
  if (core == nullptr || core->greenlet_.get() != g.get() || core->conn_ == nullptr) return nullptr;
  return core;
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

int Core::connection_fd() const { return conn_ != nullptr ? conn_->fd : -1; }

void Core::mark_upgraded() noexcept {
  upgraded_ = true;
  headers_sent_ = true;
  keep_alive_ = false;
  conn_->upgraded = true;
  server_->unwatch_readable(conn_);
}

bool Core::send_raw(const char* data, size_t len) noexcept {
  iovec iov{const_cast<char*>(data), len};
  return send_all(&iov, 1);
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
    if (!wait_io(CoreState::kWaitRead, timeout)) {
      if (killed_ || cancelled_) return -1;
      if (wake_ == WakeReason::kTimeout) return 0;
      return -1;
    }
  }
}

// --- Request body ---------------------------------------------------------------------------

bool Core::fill_body(bool* error) noexcept {
  *error = false;
  RequestParser& p = conn_->parser;
  while (body_pos_ >= body_.size()) {
    body_.clear();
    body_pos_ = 0;
    if (conn_->uwsgi) {
      if (conn_->uwsgi_body_left == 0) return false;
      if (conn_->buffered() > 0) {
        size_t n =
            static_cast<size_t>(std::min<uint64_t>(conn_->buffered(), conn_->uwsgi_body_left));
        body_.append(conn_->data(), n);
        conn_->consume(n);
        conn_->uwsgi_body_left -= n;
        continue;
      }
    } else if (!p.has_body() || p.message_complete()) {
      return false;
    }
    if (conn_->buffered() > 0) {
      size_t consumed = 0;
      auto r = p.feed_body(conn_->data(), conn_->buffered(), &consumed, &body_);
      conn_->consume(consumed);
      if (r == RequestParser::Result::kError) {
        error_status_ = p.error_status();
        keep_alive_ = false;
        PyErr_Format(PyExc_OSError, "bad request body: %d %s", p.error_status(),
                     std::string(p.error_reason()).c_str());
        *error = true;
        return false;
      }
      continue;
    }
    if (!conn_->uwsgi && p.expect_continue() && !sent_continue_ && !headers_sent_) {
      sent_continue_ = true;
      static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      iovec iov{cont, sizeof cont - 1};
      if (!send_all(&iov, 1)) {
        PyErr_SetString(PyExc_OSError, "client disconnected");
        *error = true;
        return false;
      }
    }
    ssize_t n = conn_->fill();
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const uint64_t received =
          conn_->uwsgi ? conn_->uwsgi->content_length().value_or(0) - conn_->uwsgi_body_left
                       : p.body_bytes();
      const double budget =
          body_deadline_.remaining(server_->config().limits.body_timeout, received);
      bool timed_out = budget <= 0;
      if (!timed_out) {
        const double start = now_seconds();
        const bool ready = wait_io(CoreState::kWaitRead, std::min(budget, kSocketTimeout));
        body_deadline_.add_wait(now_seconds() - start);
        if (ready) continue;
        timed_out = wake_ == WakeReason::kTimeout;
      }
      keep_alive_ = false;
      if (timed_out && !killed_ && !cancelled_) error_status_ = 408;
      PyErr_SetString(killed_ ? PyExc_OSError : PyExc_TimeoutError,
                      killed_ ? "request cancelled" : "timed out reading the request body");
      *error = true;
      return false;
    }
    keep_alive_ = false;
    conn_->peer_closed = true;
    score_read_error(server_->context().score, id_);
    PyErr_SetString(PyExc_OSError, "client disconnected before sending the whole body");
    *error = true;
    return false;
  }
  return true;
}

bool Core::finish_request_body() noexcept {
  RequestParser& p = conn_->parser;
  if (conn_->uwsgi) return false;  // never reused
  if (!p.has_body() || p.message_complete()) return true;
  if (!keep_alive_) return false;
  // The client waits for "100 Continue" before sending: it was never asked to, so the body
  // is not coming; the connection cannot be reused.
  if (p.expect_continue() && !sent_continue_) return false;
  if (auto cl = p.content_length(); cl && *cl > kMaxDrainBytes) return false;
  uint64_t drained = 0;
  for (;;) {
    drained += body_.size() - body_pos_;
    body_pos_ = body_.size();
    if (drained > kMaxDrainBytes) return false;
    bool error = false;
    if (!fill_body(&error)) {
      if (error) PyErr_Clear();
      return !error;
    }
  }
}

}  // namespace aiowsgi::worker
