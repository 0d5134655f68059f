// Request-bound callables: start_response and write() as the app receives them. Each is bound
// to one request of one core by the core's request serial, so that a reference the app keeps
// past its request raises RuntimeError instead of reaching the core's next request (SPEC.md
// "Python side"). Workers only; needs the GIL.
#pragma once

#include <Python.h>

#include <cstdint>

#include "worker/python/py_ref.h"

namespace aiowsgi::worker {

class RequestHost;

// Creates the type. Call once after Py_Initialize; false with a Python exception on failure.
bool init_request_bound_type() noexcept;

// Points *slot at a callable running |fn| for |core|'s request |serial|. The object of the
// previous request is reused when nothing but *slot refers to it (no allocation per request);
// one the app kept keeps its old serial and a new object takes the slot. False with a Python
// exception set when that allocation fails.
bool rebind_to_request(PyRef* slot, vectorcallfunc fn, RequestHost* core, uint64_t serial) noexcept;

// The core a callable belongs to, if the request it was bound to is the one that core serves
// now; otherwise nullptr with RuntimeError set (|what| names the callable for the message).
RequestHost* bound_core(PyObject* callable, const char* what) noexcept;

// The bodies of the two callables (vectorcall, for rebind_to_request): the app's
// start_response(status, response_headers, exc_info=None), which returns write; and
// write(data), which sends the head if needed and |data| as body bytes, from the request's own
// core only.
PyObject* start_response_call(PyObject* self, PyObject* const* args, size_t nargsf,
                              PyObject* kwnames) noexcept;
PyObject* write_call(PyObject* self, PyObject* const* args, size_t nargsf,
                     PyObject* kwnames) noexcept;

}  // namespace aiowsgi::worker
