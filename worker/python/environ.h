// The WSGI environ of one request (PEP 3333, SPEC.md "Environ"): built by the core that
// serves the request, from its connection's parsed head (HTTP) or packet (uwsgi protocol).
// Also the interned strings every request reuses. Workers only; needs the GIL.
#pragma once

#include <Python.h>

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "worker/python/py_ref.h"

namespace aiowsgi::worker {

class RequestHost;

// A map keyed by std::string that is also searched with a std::string_view (C++20
// heterogeneous lookup): a per-request lookup builds no std::string.
struct StringViewHash {
  using is_transparent = void;
  // Not noexcept on purpose: libstdc++ then keeps each node's hash, so a lookup compares
  // stored hashes instead of hashing again every key it walks past in a bucket.
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using PyRefByName = std::unordered_map<std::string, PyRef, StringViewHash, std::equal_to<>>;

// One interned value per common request method, found by a scan (seven short names).
struct MethodName {
  std::string_view name;
  PyRef value;
};

// Interned environ keys and values reused by every request. Created on first use (after
// Py_Initialize) and kept for the process's lifetime.
struct InternedStrings {
  PyRef request_method;
  PyRef path_info;
  PyRef query_string;
  PyRef request_uri;
  PyRef server_protocol;
  PyRef remote_addr;
  PyRef remote_port;
  PyRef content_type;
  PyRef content_length;
  PyRef wsgi_input;
  PyRef aiowsgi_core;
  PyRef http10;
  PyRef http11;
  PyRef close;
  std::array<MethodName, 7> methods;
  PyRefByName header_keys;  // lower-case name -> environ key
};
InternedStrings& interned() noexcept;

// The environ for the request |core| is serving now (new reference): the listener's
// template, the peer's address, the core id, a fresh wsgi.input and the request's own keys.
// nullptr with a Python exception set on failure.
PyObject* build_environ(RequestHost& core) noexcept;

}  // namespace aiowsgi::worker
