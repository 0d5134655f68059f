// The steps that bring up a worker's interpreter and serve an imported app, shared by a
// worker that imports the app itself (worker.cpp) and by a preload process and the workers
// it forks (preload.cpp). Child processes only; all but reset_signals need the GIL.
#pragma once

#include <Python.h>

#include <string>

#include "common/status.h"
#include "config/config.h"
#include "worker/worker.h"

namespace aiowsgi::worker {

class ModuleFileReporter;  // worker/module_files.h

// Before Python starts: every signal back to its default (the master's libev handlers must
// not leak, NOTES.md), SIGPIPE ignored, nothing blocked.
void reset_signals();
// Py_InitializeFromConfig with the server's settings and the built-in modules registered.
Status init_python(const config::Config& cfg);
// sys.path additions from [app] python_path. False with a Python exception set.
bool extend_sys_path(const config::AppConfig& app);
// greenlet's C API and the server's Python types. False with a Python exception set.
bool prepare_python_types();
// A new event loop of the configured kind ("asyncio" or "uvloop"); new reference or nullptr.
PyObject* make_loop(const std::string& kind);
// asyncio.set_event_loop(loop). False with a Python exception set.
bool set_current_loop(PyObject* loop);
// The app is imported and |loop| is this process's own current loop: serve until stopped.
// |reload_reporter| ([app] reload) has reported the files loaded so far; it rescans while the
// loop runs. Returns the exit status (kExitOk, or kExitBootError after telling the master).
int serve_app(const WorkerContext& ctx, PyObject* loop, PyObject* app,
              ModuleFileReporter& reload_reporter);
// At exit: atexit callbacks, then the app's streams and the log flushed (no Py_Finalize).
void finish_python();

}  // namespace aiowsgi::worker
