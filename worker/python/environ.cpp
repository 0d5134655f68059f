#include "worker/python/environ.h"

#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/url_prefix.h"
#include "worker/protocol/char_class.h"
#include "worker/protocol/forwarded.h"
#include "worker/protocol/header_fields.h"
#include "worker/protocol/request_target.h"
#include "worker/python/request_host.h"
#include "worker/python/wsgi_input.h"

namespace aiowsgi::worker {

namespace {

// The environ key for a request header ("HTTP_X_FORWARDED_FOR"), cached. A new reference,
// or nullptr for a name the environ cannot carry unambiguously (an underscore would collide
// with the dash spelling, the spoofing hole nginx and gunicorn close the same way).
PyObject* header_key(std::string_view name) {
  // Lower-cased on the stack: looking up a cached name allocates nothing.
  char stack[64];
  std::string heap;
  char* buf = stack;
  if (name.size() > sizeof stack) {
    heap.resize(name.size());
    buf = heap.data();
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '_') return nullptr;
    buf[i] = char_class::lower(name[i]);
  }
  const std::string_view lower(buf, name.size());
  auto& cache = interned().header_keys;
  if (auto it = cache.find(lower); it != cache.end())
    return PyRef::borrow(it->second.get()).release();
  std::string key = "HTTP_";
  for (char ch : lower) key += ch == '-' ? '_' : static_cast<char>(toupper(ch));
  PyObject* k = PyUnicode_DecodeLatin1(key.data(), static_cast<Py_ssize_t>(key.size()), nullptr);
  if (k == nullptr) return nullptr;
  // Bounded: a client inventing header names must not grow the cache forever.
  if (cache.size() < 512) {
    PyUnicode_InternInPlace(&k);
    cache.emplace(std::string(lower), PyRef::borrow(k));
  }
  return k;
}

// The str of an environ value (new reference): the very str the last request got for that
// key, when the bytes are the same. Most requests repeat their Host, Connection, User-Agent,
// Accept... values, and requests held by the thousand (long polls) their path and query too;
// sharing the immutable str saves a ~60-byte object per value for every request in progress.
// One entry per environ key, for short values; the entry holds its key, so that the key's
// address cannot come to name another one. nullptr with a Python exception set on failure.
PyObject* shared_value(PyObject* key, std::string_view v) {
  constexpr size_t kMaxShared = 256;
  constexpr size_t kMaxKeys = 512;
  struct Last {
    PyRef key;
    PyRef value;
  };
  // Never destroyed: the interpreter may be finalized before static destructors run.
  static auto* last = new std::unordered_map<PyObject*, Last>;
  auto decode = [v] {
    return PyUnicode_DecodeLatin1(v.data(), static_cast<Py_ssize_t>(v.size()), nullptr);
  };
  // CPython keeps one str of each Latin-1 character and the empty one: "/" and "" are shared
  // already, without the lookup.
  if (v.size() <= 1 || v.size() > kMaxShared) return decode();
  auto it = last->find(key);
  if (it != last->end()) {
    PyObject* prev = it->second.value.get();
    if (static_cast<size_t>(PyUnicode_GET_LENGTH(prev)) == v.size() &&
        PyUnicode_KIND(prev) == PyUnicode_1BYTE_KIND &&
        std::memcmp(PyUnicode_1BYTE_DATA(prev), v.data(), v.size()) == 0)
      return PyRef::borrow(prev).release();
  }
  PyObject* fresh = decode();
  if (fresh == nullptr) return nullptr;
  if (it != last->end()) {
    it->second.value = PyRef::borrow(fresh);
  } else if (last->size() < kMaxKeys) {
    last->emplace(key, Last{PyRef::borrow(key), PyRef::borrow(fresh)});
  }
  return fresh;
}

// d[key] = value, taking the reference to |value| (which may be nullptr after a failed
// constructor: then false, with that constructor's exception set).
bool dict_set_steal(PyObject* d, PyObject* key, PyObject* value) {
  if (value == nullptr) return false;
  int rc = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  return rc == 0;
}

// What every request's environ starts with, whatever the protocol: the listener's template
// (PEP 3333 constants), the peer's address, this core's id and a fresh wsgi.input.
PyObject* environ_base(RequestHost& core) noexcept {
  InternedStrings& s = interned();
  PyRef env = PyRef::steal(PyDict_Copy(core.environ_template()));
  if (!env) return nullptr;
  PyObject* d = env.get();
  PyObject* addr = core.remote_addr();
  if (addr == nullptr || PyDict_SetItem(d, s.remote_addr.get(), addr) < 0) return nullptr;
  PyObject* port = core.remote_port();
  if (port == nullptr || PyDict_SetItem(d, s.remote_port.get(), port) < 0) return nullptr;
  // Client certificates ([tls] ca) under the names nginx and uWSGI give them.
  std::string_view dn, pem;
  if (core.client_certificate(&dn, &pem)) {
    for (auto [key, value] : {std::pair<const char*, std::string_view>{"SSL_CLIENT_S_DN", dn},
                              {"SSL_CLIENT_VERIFY", "SUCCESS"},
                              {"SSL_CLIENT_CERT", pem}}) {
      PyRef v = PyRef::steal(
          PyUnicode_DecodeLatin1(value.data(), static_cast<Py_ssize_t>(value.size()), nullptr));
      if (!v || PyDict_SetItemString(d, key, v.get()) < 0) return nullptr;
    }
  }
  if (PyDict_SetItem(d, s.aiowsgi_core.get(), core.id_object()) < 0) return nullptr;
  if (!dict_set_steal(d, s.wsgi_input.get(), new_input(&core))) return nullptr;
  return env.release();
}

// The environ of a uwsgi-protocol request: the peer (nginx) already sends CGI variables, so
// they are taken as they are, over the listener's template and this connection's defaults.
PyObject* build_uwsgi_environ(RequestHost& core, const UwsgiParser& u) noexcept {
  PyRef env = PyRef::steal(environ_base(core));
  if (!env) return nullptr;
  PyObject* d = env.get();
  auto set = [d](PyObject* key, PyObject* value) { return dict_set_steal(d, key, value); };
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
  // [app] mount, as uWSGI's manage-script-name: SCRIPT_NAME is the template's, and PATH_INFO
  // loses the prefix where it has it, unless the web server sent SCRIPT_NAME itself.
  std::string_view mount = core.mount();
  if (auto path = u.find("PATH_INFO");
      !mount.empty() && path && !u.find("SCRIPT_NAME") && under_prefix(*path, mount)) {
    std::string_view rest = path->substr(mount.size());
    if (!set(interned().path_info.get(),
             PyUnicode_DecodeLatin1(rest.data(), static_cast<Py_ssize_t>(rest.size()), nullptr)))
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

// Applies what a trusted proxy's forwarding fields say (worker/protocol/forwarded.h) to |d|;
// remembers the client for the access log and the prefix for PATH_INFO in *prefix ("" when
// none). False only with a Python exception set.
bool set_forwarded(PyObject* d, RequestHost& core, const ForwardedFields& fields,
                   const IpNetworks& trusted, std::string* prefix) noexcept {
  prefix->clear();
  ForwardedView v;
  try {
    v = resolve_forwarded(fields, trusted);
  } catch (...) {  // std::bad_alloc: keep the peer's values rather than fail the request
    return true;
  }
  auto put = [d](const char* key, const std::string& value) {
    PyRef text = PyRef::steal(
        PyUnicode_DecodeLatin1(value.data(), static_cast<Py_ssize_t>(value.size()), nullptr));
    return text && PyDict_SetItemString(d, key, text.get()) == 0;
  };
  if (!v.client.empty()) {
    if (!put("REMOTE_ADDR", v.client)) return false;
    // The peer's port belongs to the proxy: a pair of the client's address and the proxy's
    // port would be a lie. PEP 3333 does not require REMOTE_PORT, so without the client's
    // own port there is none.
    if (!v.client_port.empty()) {
      if (!put("REMOTE_PORT", v.client_port)) return false;
    } else if (PyDict_DelItem(d, interned().remote_port.get()) < 0) {
      PyErr_Clear();  // KeyError: not there to begin with
    }
    core.set_forwarded_client(std::move(v.client));
  }
  if (!v.scheme.empty() && !put("wsgi.url_scheme", v.scheme)) return false;
  if (!v.host.empty() && !put("HTTP_HOST", v.host)) return false;
  if (!v.port.empty() && !put("SERVER_PORT", v.port)) return false;
  if (!v.prefix.empty()) {
    if (!put("SCRIPT_NAME", v.prefix)) return false;
    *prefix = std::move(v.prefix);
  }
  return true;
}

}  // namespace

InternedStrings& interned() noexcept {
  // Never destroyed: the interpreter may be finalized before static destructors run.
  static InternedStrings* s = [] {
    auto* t = new InternedStrings;
    auto mk = [](const char* v) { return PyRef::steal(PyUnicode_InternFromString(v)); };
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
    size_t i = 0;
    for (const char* m : {"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
      t->methods[i++] = {m, mk(m)};
    return t;
  }();
  return *s;
}

PyObject* build_environ(RequestHost& core) noexcept {
  if (const UwsgiParser* u = core.uwsgi_head()) return build_uwsgi_environ(core, *u);
  InternedStrings& s = interned();
  const RequestParser& p = *core.http_head();
  PyRef env = PyRef::steal(environ_base(core));
  if (!env) return nullptr;
  PyObject* d = env.get();
  auto set = [d](PyObject* key, PyObject* value) { return dict_set_steal(d, key, value); };
  auto latin1 = [](std::string_view v) {
    return PyUnicode_DecodeLatin1(v.data(), static_cast<Py_ssize_t>(v.size()), nullptr);
  };
  std::string_view method = p.method();
  PyObject* m = nullptr;
  for (const MethodName& known : s.methods) {
    if (known.name == method) {
      m = PyRef::borrow(known.value.get()).release();
      break;
    }
  }
  if (m == nullptr) m = latin1(method);
  if (!set(s.request_method.get(), m)) return nullptr;
  // Most paths have nothing to decode; the others are decoded into a buffer that keeps its
  // capacity (the worker's only thread).
  std::string_view path = p.path();
  if (path.find('%') != std::string_view::npos) {
    static std::string decoded;
    decoded.clear();
    percent_decode(path, &decoded);
    path = decoded;
  }
  if (!set(s.query_string.get(), shared_value(s.query_string.get(), p.query()))) return nullptr;
  if (!set(s.request_uri.get(), shared_value(s.request_uri.get(), p.target()))) return nullptr;
  PyObject* proto = p.http_minor() >= 1 ? s.http11.get() : s.http10.get();
  if (PyDict_SetItem(d, s.server_protocol.get(), proto) < 0) return nullptr;
  // Repeated fields are joined in C++ first, one Python str per name: joining str by str
  // would copy the value so far on every repeat (quadratic in the head's size).
  static JoinedHeaders joined;  // the worker's only thread; keeps its capacity across requests
  joined.group(p);
  // Only a trusted peer's forwarding fields are even looked at; they still reach the app as
  // HTTP_X_FORWARDED_* like any field.
  ForwardedFields forwarded;
  const bool trusted_peer = core.trusted_peer();
  for (const JoinedHeaders::Field& field : joined.fields()) {
    std::string_view name = field.name, value = field.value;
    if (trusted_peer) forwarded.offer(name, value);
    PyRef key;
    if (name.size() == 12 && char_class::iequals(name, "content-type")) {
      key = PyRef::borrow(s.content_type.get());
    } else if (name.size() == 14 && char_class::iequals(name, "content-length")) {
      if (p.chunked()) continue;  // SPEC: absent for a chunked body
      key = PyRef::borrow(s.content_length.get());
    } else {
      key = PyRef::steal(header_key(name));
      if (!key) {
        if (PyErr_Occurred()) return nullptr;
        continue;
      }
    }
    if (!set(key.get(), shared_value(key.get(), value))) return nullptr;
  }
  if (p.chunked()) {
    // A chunked body read whole before the app ran has a length now: frameworks that look
    // only at CONTENT_LENGTH read it as they read any other.
    if (std::optional<uint64_t> n = core.buffered_body_length()) {
      if (!set(s.content_length.get(), PyUnicode_FromString(std::to_string(*n).c_str())))
        return nullptr;
    }
  }
  if (std::string_view authority = p.authority(); !authority.empty()) {
    // An absolute-form target names the host itself; RFC 9112 3.2.2: it replaces Host.
    PyRef key = PyRef::steal(header_key("host"));
    if (!key || !set(key.get(), latin1(authority))) return nullptr;
  }
  std::string_view prefix = core.mount();
  static std::string proxy_prefix;  // the worker's only thread
  proxy_prefix.clear();
  if (forwarded.any() && !set_forwarded(d, core, forwarded, core.trusted_proxies(), &proxy_prefix))
    return nullptr;
  if (!proxy_prefix.empty()) prefix = proxy_prefix;
  // SCRIPT_NAME is the template's (the mount); a trusted proxy may name another prefix, and
  // strips it itself or not: PATH_INFO loses the prefix only where the path has it.
  if (!prefix.empty() && under_prefix(path, prefix)) path.remove_prefix(prefix.size());
  if (!set(s.path_info.get(), shared_value(s.path_info.get(), path))) return nullptr;
  return env.release();
}

}  // namespace aiowsgi::worker
