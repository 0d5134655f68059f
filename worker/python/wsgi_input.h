// wsgi.input: the request body stream handed to the app (PEP 3333: read, readline, readlines,
// iteration). Reading suspends only the calling core when the client has not sent the bytes
// yet. Workers only; needs the GIL.
#pragma once

#include <Python.h>

namespace aiowsgi::worker {

class RequestHost;

// Creates the type. Call once after Py_Initialize; false with a Python exception on failure.
bool init_input_type() noexcept;

// A new wsgi.input for the request |core| is serving now (new reference). Read after that
// request is over, or from outside its core (a loop callback), it raises RuntimeError.
PyObject* new_input(RequestHost* core) noexcept;

}  // namespace aiowsgi::worker
