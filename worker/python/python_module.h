// The `aiowsgi` module every worker provides to its app (SPEC.md "Python side"), plus the
// worker's Python-level plumbing: the app loader, wsgi.file_wrapper, and the streams that send
// the app's stdout/stderr to the server log. Workers only; needs the GIL.
#pragma once

#include <Python.h>

#include <string>

#include "common/worker_context.h"
#include "config/config.h"

namespace aiowsgi::worker {

// Registers the built-in module; call before Py_Initialize.
void register_builtin_module() noexcept;

// After Py_Initialize, before the app is imported: fills the module (worker id, loop, the
// Python-level helpers) and routes sys.stdout / sys.stderr to the server log.
// False with a Python exception set on failure.
bool setup_python_module(const WorkerContext& ctx, PyObject* loop) noexcept;

// Imports the app per [app] and returns the WSGI callable (new reference), or nullptr with the
// Python exception set (the caller logs its traceback).
PyObject* load_app(const config::AppConfig& app) noexcept;

// Calls the module's Python helper |name| (aiowsgi_bootstrap.py) with |args| (a tuple or
// nullptr). False with a Python exception set on failure.
bool call_module_helper(const char* name, PyObject* args) noexcept;

// The server saw the client of core |core_id| close its connection: a request of that core
// suspended in aiowsgi.await_() is resumed from a loop callback, its awaitable cancelled.
// No effect otherwise. Called on the loop's greenlet. True when such a request was resumed.
bool notify_client_gone(int core_id) noexcept;

// True if |o| was made by environ["wsgi.file_wrapper"].
bool is_file_wrapper(PyObject* o) noexcept;

// Takes the pending exception and formats it with its traceback; "" when none is set.
std::string fetch_exception_text();

}  // namespace aiowsgi::worker
