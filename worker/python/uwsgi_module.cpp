#include "worker/python/uwsgi_module.h"

#include <Python.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/keys.h"
#include "worker/protocol/websocket.h"
#include "worker/python/embedded_python.h"
#include "worker/python/py_ref.h"
#include "worker/python/request_host.h"
#include "worker/python/uwsgi_bootstrap_py.h"  // generated from uwsgi_bootstrap.py

namespace aiowsgi::worker {

namespace {

namespace ws = websocket;

const config::Config* g_config = nullptr;

// Seconds of silence in a blocking websocket_recv() before the server pings the client; a
// second silent interval (no pong, no message) means the client is gone. uWSGI's
// websockets-ping-freq default.
constexpr double kPingInterval = 30;
// Payloads up to this size are copied behind their frame header and sent with one send().
constexpr size_t kCoalesceBytes = 16384;

// The websocket state of one core's current request (after websocket_handshake()).
struct WsSession {
  uint64_t serial = 0;  // the core's request serial at the handshake: stale after that request
  ws::FrameReader reader;
  bool closed = false;  // close frame sent (or the client is gone): no more frames either way
  bool awaiting_pong = false;
  bool sending = false;  // a frame is going out (its core may wait for the socket)
  uint16_t goodbye = 0;  // the worker is leaving: closed (or to close) with this code
};

std::vector<std::unique_ptr<WsSession>> g_sessions;  // indexed by core id
uint16_t g_goodbye = 0;  // websocket_goodbye()'s code: the worker is leaving

// No more frames either way: the reader's buffers (up to a message's size) are given back now
// rather than when the core's next handshake replaces the session.
void mark_closed(WsSession* s) {
  s->closed = true;
  s->reader = ws::FrameReader();
}

// Frees the sessions of requests that have ended (their core moved on).
void drop_stale_sessions() {
  for (size_t i = 0; i < g_sessions.size(); ++i) {
    if (!g_sessions[i]) continue;
    RequestHost* core = host_by_id(static_cast<int>(i));
    if (core == nullptr || core->serial() != g_sessions[i]->serial || !core->in_request()) {
      g_sessions[i].reset();
    }
  }
}

RequestHost* require_core(const char* fn) {
  RequestHost* core = current_host();
  if (core == nullptr) {
    PyErr_Format(PyExc_RuntimeError,
                 "uwsgi.%s() must be called from inside a request, not at import time or "
                 "from a loop callback",
                 fn);
  }
  return core;
}

WsSession* session_for(RequestHost* core) {
  size_t id = static_cast<size_t>(core->id());
  if (id >= g_sessions.size() || !g_sessions[id]) return nullptr;
  WsSession* s = g_sessions[id].get();
  return s->serial == core->serial() && core->upgraded() ? s : nullptr;
}

// A request header by |name|, or its CGI variable |cgi_name| on a uwsgi-protocol connection
// (the peer sends the headers as HTTP_* variables there). "" when absent.
std::string_view request_header(RequestHost* core, std::string_view name,
                                std::string_view cgi_name) {
  if (const UwsgiParser* u = core->uwsgi_head())
    return u->find(cgi_name).value_or(std::string_view());
  const RequestParser& p = *core->http_head();
  for (size_t i = 0; i < p.header_count(); ++i) {
    std::string_view n = p.header_name(i);
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) {
      return p.header_value(i);
    }
  }
  return {};
}

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != s.npos; }

void say_goodbye(RequestHost* core, WsSession* s);

PyObject* ws_handshake(PyObject*, PyObject* args, PyObject* kwargs) noexcept {
  static const char* kKeywords[] = {"key", "origin", "proto", nullptr};
  const char *key = nullptr, *origin = nullptr, *proto = nullptr;
  Py_ssize_t key_len = 0, origin_len = 0, proto_len = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|z#z#z#:websocket_handshake",
                                   const_cast<char**>(kKeywords), &key, &key_len, &origin,
                                   &origin_len, &proto, &proto_len))
    return nullptr;
  RequestHost* core = require_core("websocket_handshake");
  if (core == nullptr) return nullptr;
  if (core->headers_sent()) {
    PyErr_SetString(PyExc_OSError, "websocket handshake: the response has already started");
    return nullptr;
  }
  std::string_view k = key != nullptr
                           ? std::string_view(key, static_cast<size_t>(key_len))
                           : request_header(core, "Sec-WebSocket-Key", "HTTP_SEC_WEBSOCKET_KEY");
  std::string_view o(origin != nullptr ? origin : "", static_cast<size_t>(origin_len));
  std::string_view pr(proto != nullptr ? proto : "", static_cast<size_t>(proto_len));
  // A refused handshake answers 400 unless the app handles the exception itself: the client
  // asked for something other than a websocket, or asked wrongly (RFC 6455 4.2.1).
  if (k.empty()) {
    core->set_error_status(400);
    PyErr_SetString(PyExc_OSError, "websocket handshake: the request has no Sec-WebSocket-Key");
    return nullptr;
  }
  if (has_line_break(k) || has_line_break(o) || has_line_break(pr)) {
    PyErr_SetString(PyExc_ValueError, "websocket handshake: a value contains CR or LF");
    return nullptr;
  }
  ws::HandshakeRequest hr;
  if (const UwsgiParser* u = core->uwsgi_head()) {
    hr.method = u->find("REQUEST_METHOD").value_or("");
    hr.http11 = u->find("SERVER_PROTOCOL").value_or("HTTP/1.1") != "HTTP/1.0";
  } else {
    hr.method = core->http_head()->method();
    hr.http11 = core->http_head()->http_minor() >= 1;
  }
  hr.upgrade = request_header(core, "Upgrade", "HTTP_UPGRADE");
  hr.connection = request_header(core, "Connection", "HTTP_CONNECTION");
  hr.version = request_header(core, "Sec-WebSocket-Version", "HTTP_SEC_WEBSOCKET_VERSION");
  hr.key = k;
  if (std::string_view why = ws::handshake_error(hr); !why.empty()) {
    core->set_error_status(400);
    PyErr_Format(PyExc_OSError, "websocket handshake: %.*s", static_cast<int>(why.size()),
                 why.data());
    return nullptr;
  }
  // RFC 6455 4.2.2. Sec-WebSocket-Origin is what uWSGI sends for its origin argument.
  std::string resp =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  resp += ws::accept_key(k);
  resp += "\r\n";
  if (!o.empty()) fmt::format_to(std::back_inserter(resp), "Sec-WebSocket-Origin: {}\r\n", o);
  if (!pr.empty()) fmt::format_to(std::back_inserter(resp), "Sec-WebSocket-Protocol: {}\r\n", pr);
  resp += "\r\n";
  // Upgraded first: whatever happens next, the server writes no HTTP response on this socket.
  core->mark_upgraded();
  drop_stale_sessions();
  size_t id = static_cast<size_t>(core->id());
  if (g_sessions.size() <= id) g_sessions.resize(id + 1);
  g_sessions[id] = std::make_unique<WsSession>();
  g_sessions[id]->serial = core->serial();
  if (!core->send_raw(resp.data(), resp.size())) {
    mark_closed(g_sessions[id].get());
    PyErr_SetString(PyExc_OSError, "websocket handshake: the client is gone");
    return nullptr;
  }
  // A request the worker took on before it started leaving: the client is told at once to
  // reconnect elsewhere, and the app's first receive raises.
  if (g_goodbye != 0) say_goodbye(core, g_sessions[id].get());
  Py_RETURN_NONE;
}

// Sends a close frame (best effort: the client may be gone) and marks the session closed.
void send_close(RequestHost* core, WsSession* s, uint16_t code, std::string_view reason) {
  std::string out;
  if (code == 1005) {
    ws::encode_frame(ws::Opcode::kClose, "", &out);  // the client sent no code: echo none
  } else {
    ws::encode_close(code, reason, &out);
  }
  (void)core->send_raw(out.data(), out.size());
  mark_closed(s);
}

// The worker is leaving: the close frame with g_goodbye, unless a frame is going out now (the
// sender sends it once done: see send_frame).
void say_goodbye(RequestHost* core, WsSession* s) {
  s->goodbye = g_goodbye;
  if (s->sending || s->closed) return;
  send_close(core, s, g_goodbye,
             g_goodbye == ws::kCloseServiceRestart ? "server restarting" : "server going away");
}

// OSError for a session the server closed because the worker is leaving.
PyObject* goodbye_error(const WsSession* s, const char* fn) {
  PyErr_Format(PyExc_OSError, "uwsgi.%s(): the websocket is closed: the server is %s (%d)", fn,
               s->goodbye == ws::kCloseServiceRestart ? "restarting" : "going away", s->goodbye);
  return nullptr;
}

// One whole frame (or several) as it is; marks the session sending meanwhile, so that a goodbye
// waits for the frame's end instead of cutting into it. False when the client is gone (the
// session is closed then; no exception is set).
bool send_frame(RequestHost* core, WsSession* s, std::string_view a, std::string_view b = {}) {
  s->sending = true;
  bool ok = core->send_raw(a.data(), a.size()) && (b.empty() || core->send_raw(b.data(), b.size()));
  s->sending = false;
  if (!ok) {
    mark_closed(s);
    return false;
  }
  if (s->goodbye != 0 && !s->closed) say_goodbye(core, s);
  return true;
}

WsSession* require_session(RequestHost* core, const char* fn) {
  WsSession* s = session_for(core);
  if (s == nullptr) {
    PyErr_Format(PyExc_OSError, "uwsgi.%s(): no websocket handshake on this request", fn);
    return nullptr;
  }
  if (s->closed && s->goodbye != 0) {
    goodbye_error(s, fn);
    return nullptr;
  }
  if (s->closed) {
    PyErr_Format(PyExc_OSError, "uwsgi.%s(): the websocket is closed", fn);
    return nullptr;
  }
  return s;
}

// websocket_recv (block) and websocket_recv_nb: the next complete message as bytes; b"" from
// the non-blocking form when none is complete yet. Pings are answered on the way. A close
// frame is answered and raises OSError, as does a protocol violation (after closing with its
// code) or a vanished client.
PyObject* ws_recv_impl(bool block, const char* fn) noexcept {
  RequestHost* core = require_core(fn);
  if (core == nullptr) return nullptr;
  WsSession* s = require_session(core, fn);
  if (s == nullptr) return nullptr;
  std::string scratch;
  for (;;) {
    switch (s->reader.next()) {
      case ws::FrameReader::Event::kMessage:
        return PyBytes_FromStringAndSize(s->reader.payload().data(),
                                         static_cast<Py_ssize_t>(s->reader.payload().size()));
      case ws::FrameReader::Event::kPing: {
        std::string out;
        ws::encode_frame(ws::Opcode::kPong, s->reader.payload(), &out);
        if (!send_frame(core, s, out)) {
          PyErr_SetString(PyExc_OSError, "websocket: the client is gone");
          return nullptr;
        }
        if (s->closed) return goodbye_error(s, fn);
        continue;
      }
      case ws::FrameReader::Event::kPong:
        continue;
      case ws::FrameReader::Event::kClose: {
        uint16_t code = s->reader.close_code();
        send_close(core, s, code, "");
        PyErr_Format(PyExc_OSError, "websocket closed by the client (code %d)", code);
        return nullptr;
      }
      case ws::FrameReader::Event::kError: {
        uint16_t code = s->reader.error_code();
        std::string reason(s->reader.error_reason());
        spdlog::info("websocket on core {}: {}; closing with {}", core->id(), reason, code);
        send_close(core, s, code, reason);
        PyErr_Format(PyExc_OSError, "websocket protocol error: %s (closed with %d)", reason.c_str(),
                     code);
        return nullptr;
      }
      case ws::FrameReader::Event::kNeedMore:
        break;
    }
    scratch.clear();
    // An idle websocket holds no frame buffers while its core waits (10,000 of them).
    if (block) s->reader.release_idle();
    ssize_t n = core->recv_raw(&scratch, block, kPingInterval);
    // The worker started leaving while this core waited (the server woke it): what came
    // meanwhile is not read any more, the stream ended with the close frame.
    if (s->goodbye != 0 && s->closed) return goodbye_error(s, fn);
    if (n > 0) {
      s->awaiting_pong = false;
      s->reader.append(scratch.data(), scratch.size());
      continue;
    }
    if (n < 0) {
      mark_closed(s);
      PyErr_SetString(PyExc_OSError, "websocket: the client closed the connection");
      return nullptr;
    }
    if (!block) return PyBytes_FromStringAndSize("", 0);
    if (s->awaiting_pong) {
      send_close(core, s, ws::kCloseGoingAway, "no pong");
      PyErr_SetString(PyExc_OSError, "websocket: the client did not answer a ping");
      return nullptr;
    }
    std::string ping;
    ws::encode_frame(ws::Opcode::kPing, "", &ping);
    if (!send_frame(core, s, ping)) {
      PyErr_SetString(PyExc_OSError, "websocket: the client is gone");
      return nullptr;
    }
    if (s->closed) return goodbye_error(s, fn);
    s->awaiting_pong = true;
  }
}

PyObject* ws_recv(PyObject*, PyObject*) noexcept { return ws_recv_impl(true, "websocket_recv"); }
PyObject* ws_recv_nb(PyObject*, PyObject*) noexcept {
  return ws_recv_impl(false, "websocket_recv_nb");
}

PyObject* ws_send_impl(PyObject* arg, ws::Opcode op, const char* fn) noexcept {
  Py_buffer buf;
  if (PyUnicode_Check(arg)) {
    // A str goes out as its UTF-8 bytes, like uWSGI's "s#" argument.
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(arg, &len);
    if (s == nullptr) return nullptr;
    if (PyBuffer_FillInfo(&buf, arg, const_cast<char*>(s), len, 1, PyBUF_SIMPLE) < 0)
      return nullptr;
  } else if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) {
    PyErr_Format(PyExc_TypeError, "uwsgi.%s() takes str or a bytes-like object, not %s", fn,
                 Py_TYPE(arg)->tp_name);
    return nullptr;
  }
  struct Release {
    Py_buffer* b;
    ~Release() { PyBuffer_Release(b); }
  } release{&buf};
  RequestHost* core = require_core(fn);
  if (core == nullptr) return nullptr;
  WsSession* s = require_session(core, fn);
  if (s == nullptr) return nullptr;
  std::string_view payload(static_cast<const char*>(buf.buf), static_cast<size_t>(buf.len));
  std::string out;
  ws::encode_header(op, payload.size(), &out);
  bool ok;
  if (payload.size() <= kCoalesceBytes) {
    out.append(payload);
    ok = send_frame(core, s, out);
  } else {
    ok = send_frame(core, s, out, payload);
  }
  if (!ok) {
    PyErr_SetString(PyExc_OSError, "websocket: the client is gone");
    return nullptr;
  }
  Py_RETURN_NONE;  // sent; a goodbye that waited for it went out after (the next call raises)
}

PyObject* ws_send(PyObject*, PyObject* arg) noexcept {
  return ws_send_impl(arg, ws::Opcode::kText, "websocket_send");
}
PyObject* ws_send_binary(PyObject*, PyObject* arg) noexcept {
  return ws_send_impl(arg, ws::Opcode::kBinary, "websocket_send_binary");
}

PyObject* connection_fd(PyObject*, PyObject*) noexcept {
  RequestHost* core = require_core("connection_fd");
  if (core == nullptr) return nullptr;
  // After a handshake the app watches the socket itself (loop.add_reader): the server's own
  // reader must not be the one asyncio keeps, or the two would take turns replacing each other.
  if (core->upgraded()) core->release_reader();
  return PyLong_FromLong(core->connection_fd());
}

// (core id, request serial) of the current request, or None outside one: the Python part
// keys its per-request wait state with it.
PyObject* token(PyObject*, PyObject*) noexcept {
  RequestHost* core = current_host();
  if (core == nullptr) Py_RETURN_NONE;
  return Py_BuildValue("(iK)", core->id(), static_cast<unsigned long long>(core->serial()));
}

// Before the app registers its own reader on fd: if fd is this request's connection, the
// server's reader steps aside (asyncio keeps one reader per fd).
PyObject* release_reader(PyObject*, PyObject* arg) noexcept {
  long fd = PyLong_AsLong(arg);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  RequestHost* core = current_host();
  if (core != nullptr && fd == core->connection_fd()) core->release_reader();
  Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"websocket_handshake",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ws_handshake)),
     METH_VARARGS | METH_KEYWORDS,
     "websocket_handshake(key=None, origin=None, proto=None): answer the upgrade with 101; "
     "key defaults to the request's Sec-WebSocket-Key"},
    {"websocket_recv", ws_recv, METH_NOARGS,
     "websocket_recv(): the next message (bytes), suspending only this core; OSError on close"},
    {"websocket_recv_nb", ws_recv_nb, METH_NOARGS,
     "websocket_recv_nb(): the next message, or b'' when none is complete; OSError on close"},
    {"websocket_send", ws_send, METH_O, "websocket_send(msg): send a text frame"},
    {"websocket_send_binary", ws_send_binary, METH_O,
     "websocket_send_binary(msg): send a binary frame"},
    {"connection_fd", connection_fd, METH_NOARGS,
     "connection_fd(): the client socket of the current request"},
    {"_token", token, METH_NOARGS, nullptr},
    {"_release_reader", release_reader, METH_O, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModuleDef = {PyModuleDef_HEAD_INIT, "uwsgi",
                          "uWSGI's Python API, the part asyncio-engine apps use, on aiowsgi.", -1,
                          kMethods};

// uwsgi.opt: the settings under uWSGI's option names, values as bytes (uWSGI's own type on
// Python 3), a repeated option as a list, a flag as True.
PyObject* build_opt(const config::Config& c) {
  PyRef d = PyRef::steal(PyDict_New());
  if (!d) return nullptr;
  bool ok = true;
  auto bytes = [](std::string_view v) {
    return PyBytes_FromStringAndSize(v.data(), static_cast<Py_ssize_t>(v.size()));
  };
  auto put = [&](const char* key, PyObject* value) {
    if (value == nullptr || PyDict_SetItemString(d.get(), key, value) < 0) ok = false;
    Py_XDECREF(value);
  };
  // The options come from the key table: each key with a uWSGI name, as uWSGI would hold it.
  config::for_each_uwsgi_option(c, [&](const config::UwsgiOption& o) {
    std::string name(o.name);
    switch (o.kind) {
      case config::UwsgiOption::Kind::kTrue:
        return put(name.c_str(), Py_NewRef(Py_True));
      case config::UwsgiOption::Kind::kNumber:
        return put(name.c_str(), bytes(fmt::format("{}", o.number)));
      case config::UwsgiOption::Kind::kText:
        break;
    }
    if (o.texts.size() == 1) return put(name.c_str(), bytes(o.texts[0]));
    PyObject* l = PyList_New(0);
    for (const auto& v : o.texts) {
      PyRef b = PyRef::steal(bytes(v));
      if (l == nullptr || !b || PyList_Append(l, b.get()) < 0) ok = false;
    }
    put(name.c_str(), l);
  });
  return ok ? d.release() : nullptr;
}

// The module's C functions and opt, then its Python half (suspend() and what it waits for,
// which live on the loop): uwsgi_bootstrap.py.
PyObject* init_module() noexcept {
  PyRef mod = PyRef::steal(PyModule_Create(&kModuleDef));
  if (!mod) return nullptr;
  PyObject* dict = PyModule_GetDict(mod.get());
  PyRef opt = PyRef::steal(build_opt(*g_config));
  if (!opt || PyDict_SetItemString(dict, "opt", opt.get()) < 0) return nullptr;
  if (!run_embedded_python(embedded::kUwsgiBootstrapFile, embedded::kUwsgiBootstrapSource, dict))
    return nullptr;
  return mod.release();
}

}  // namespace

void register_uwsgi_module(const config::Config& cfg) noexcept {
  g_config = &cfg;
  PyImport_AppendInittab("uwsgi", init_module);
}

void websocket_goodbye(uint16_t code) noexcept {
  if (g_goodbye == 0) g_goodbye = code;
  // Sending from the loop's greenlet never waits (send_raw fails instead), so no core runs
  // meanwhile and g_sessions keeps its shape.
  for (size_t i = 0; i < g_sessions.size(); ++i) {
    WsSession* s = g_sessions[i].get();
    if (s == nullptr || s->closed || s->goodbye != 0) continue;
    RequestHost* core = host_by_id(static_cast<int>(i));
    if (core == nullptr || core->serial() != s->serial || !core->in_request()) continue;
    say_goodbye(core, s);
  }
}

}  // namespace aiowsgi::worker
