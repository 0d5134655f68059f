#include "worker/worker.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/exit_codes.h"
#include "common/log.h"
#include "worker/access_log.h"
#include "worker/app_output.h"
#include "worker/control_link.h"
#include "worker/module_files.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/py_ref.h"
#include "worker/python/python_module.h"
#include "worker/python/request_bound.h"
#include "worker/python/stack_dump.h"
#include "worker/python/uwsgi_module.h"
#include "worker/python/virtualenv.h"
#include "worker/python/wsgi_input.h"
#include "worker/server.h"
#include "worker/worker_boot.h"

namespace aiowsgi::worker {

// Runs in the child before Python starts. The master's libev handlers and mask must not
// leak into the worker (a TERM would be swallowed, NOTES.md), and a shell may have left
// signals ignored (SIGQUIT arrives ignored under some supervisors).
void reset_signals() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &sa, nullptr);
  }
  // An app writing to a closed socket must get EPIPE, not die of SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
}

Status init_python(const config::Config& cfg) {
  register_builtin_module();
  if (cfg.app.uwsgi_compat) register_uwsgi_module(cfg);
  const std::string& venv = cfg.app.virtualenv;
  if (!venv.empty()) virtualenv::enter_environment(venv);
  PyConfig pc;
  PyConfig_InitPythonConfig(&pc);
  // Without this, sys.executable would be the server binary. The interpreter the build was
  // configured with (Debian: /usr/bin/python3.11), or the venv's bin/python: Python then
  // finds its pyvenv.cfg and sets itself up as that venv's interpreter.
  PyStatus st = venv.empty() ? PyConfig_SetString(&pc, &pc.program_name, AIOWSGI_PYTHON_EXECUTABLE)
                             : PyConfig_SetBytesString(&pc, &pc.program_name,
                                                       virtualenv::program_name(venv).c_str());
  if (!PyStatus_Exception(st)) {
    pc.install_signal_handlers = 0;  // asyncio's add_signal_handler owns TERM/INT/QUIT
    pc.parse_argv = 0;
    pc.buffered_stdio = 0;
    // sys.stdout and sys.stderr are Python's own text files over fds 1 and 2 (the app
    // output pipes, app_output.h). The log is UTF-8 whatever the locale, and text that
    // cannot be encoded is escaped rather than failing the print() that wrote it.
    st = PyConfig_SetString(&pc, &pc.stdio_encoding, L"utf-8");
    if (!PyStatus_Exception(st))
      st = PyConfig_SetString(&pc, &pc.stdio_errors, L"backslashreplace");
    wchar_t* argv[] = {const_cast<wchar_t*>(L"aiowsgi")};
    if (!PyStatus_Exception(st)) st = PyConfig_SetArgv(&pc, 1, argv);
  }
  if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&pc);
  PyConfig_Clear(&pc);
  if (PyStatus_Exception(st)) {
    return Status::Python(std::string("cannot start the Python interpreter: ") +
                          (st.err_msg ? st.err_msg : "unknown error"));
  }
  if (!venv.empty() && !virtualenv::expose_server_packages(cfg.app)) {
    return Status::Python("virtualenv " + venv + ": " + fetch_exception_text());
  }
  return Status::Ok();
}

// sys.path additions from [app] python_path, first in the list first on the path.
bool extend_sys_path(const config::AppConfig& app) {
  PyObject* path = PySys_GetObject("path");  // borrowed
  if (path == nullptr) return false;
  for (size_t i = app.python_path.size(); i-- > 0;) {
    PyRef p = PyRef::steal(PyUnicode_DecodeFSDefault(app.python_path[i].c_str()));
    if (!p || PyList_Insert(path, 0, p.get()) < 0) return false;
  }
  return true;
}

PyObject* make_loop(const std::string& kind) {
  if (kind == "uvloop") {
    PyRef uv = PyRef::steal(PyImport_ImportModule("uvloop"));
    if (!uv) return nullptr;
    return PyObject_CallMethod(uv.get(), "new_event_loop", nullptr);
  }
  PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
  if (!asyncio) return nullptr;
  return PyObject_CallMethod(asyncio.get(), "new_event_loop", nullptr);
}

namespace {

// Signal callbacks installed with loop.add_signal_handler (asyncio's self-pipe).
PyObject* on_sigterm(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) {
    // The master sends its kDrain, which says why, before the signal: read it first, or a
    // reload would tell websocket clients the server is going away.
    s->on_control();
    if (!s->draining()) spdlog::info("SIGTERM: finishing in-flight requests");
    s->drain(DrainReason::kShutdown);
  }
  Py_RETURN_NONE;
}
PyObject* on_sigquit(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->stop_now();
  Py_RETURN_NONE;
}
PyObject* on_sigusr1(PyObject*, PyObject*) noexcept {
  ControlLink::reopen_logs();
  Py_RETURN_NONE;
}
PyObject* on_sigusr2(PyObject*, PyObject*) noexcept {
  if (Server* s = Server::instance()) s->log_stacks();
  Py_RETURN_NONE;
}
PyMethodDef kTermDef = {"_aiowsgi_sigterm", on_sigterm, METH_NOARGS, nullptr};
PyMethodDef kQuitDef = {"_aiowsgi_sigquit", on_sigquit, METH_NOARGS, nullptr};
PyMethodDef kUsr1Def = {"_aiowsgi_sigusr1", on_sigusr1, METH_NOARGS, nullptr};
PyMethodDef kUsr2Def = {"_aiowsgi_sigusr2", on_sigusr2, METH_NOARGS, nullptr};

bool add_signal_handlers(PyObject* loop) {
  struct {
    int sig;
    PyMethodDef* def;
  } handlers[] = {
      {SIGTERM, &kTermDef}, {SIGINT, &kQuitDef},  {SIGQUIT, &kQuitDef},
      {SIGUSR1, &kUsr1Def}, {SIGUSR2, &kUsr2Def},
  };
  for (auto& h : handlers) {
    PyRef fn = PyRef::steal(PyCFunction_New(h.def, nullptr));
    if (!fn) return false;
    PyRef r = PyRef::steal(PyObject_CallMethod(loop, "add_signal_handler", "iO", h.sig, fn.get()));
    if (!r) return false;
  }
  // SIGUSR2 first writes the stack of the code running when it arrives, from the handler:
  // when a request blocks the loop (the master's harakiri asks this way before its SIGKILL)
  // that is all the log can get. Then the loop's handler above, chained, logs the suspended
  // cores once the loop runs. To fd 2: the app-output pipe, whose reader thread logs each
  // line even while the loop is stuck.
  if (!stack_dump::install_fault_dump(SIGUSR2, STDERR_FILENO)) {
    spdlog::warn("SIGUSR2 will not show the code holding the loop: {}", fetch_exception_text());
  }
  return true;
}

int serve(const WorkerContext& ctx) {
  const config::Config& cfg = *ctx.config;
  auto boot_failure = [&](const std::string& what) {
    spdlog::critical("worker {} cannot start: {}", ctx.worker_id, what);
    ControlLink::boot_error(ctx.control_fd, ctx.worker_id);
    return kExitBootError;
  };
  if (!greenlet::import_api()) return boot_failure("greenlet: " + fetch_exception_text());
  if (!init_input_type() || !init_request_bound_type()) return boot_failure(fetch_exception_text());
  PyRef loop = PyRef::steal(make_loop(cfg.app.loop));
  if (!loop)
    return boot_failure("creating the " + cfg.app.loop + " loop: " + fetch_exception_text());
  {
    // The loop is the current loop before the app is imported, so get_event_loop() works at
    // import time and in requests (also on Pythons where implicit creation is gone).
    PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
    PyRef r =
        asyncio
            ? PyRef::steal(PyObject_CallMethod(asyncio.get(), "set_event_loop", "O", loop.get()))
            : PyRef();
    if (!r) return boot_failure("set_event_loop: " + fetch_exception_text());
  }
  if (!setup_python_module(ctx, loop.get())) return boot_failure(fetch_exception_text());
  if (!extend_sys_path(cfg.app)) return boot_failure(fetch_exception_text());

  // [app] reload: report the loaded files, also when the import fails (then the files the
  // traceback names), so the master watches the file to fix.
  ModuleFileReporter reload_reporter(ctx);
  PyRef app = PyRef::steal(load_app(cfg.app));
  reload_reporter.report();
  if (!app) {
    std::string where = cfg.app.wsgi_file.empty() ? cfg.app.module : cfg.app.wsgi_file;
    spdlog::critical("worker {}: cannot load the application from {}:\n{}", ctx.worker_id, where,
                     fetch_exception_text());
    ControlLink::app_load_error(ctx.control_fd, ctx.worker_id);
    return kExitAppLoadError;
  }

  return serve_app(ctx, loop.get(), app.get(), reload_reporter);
}

}  // namespace

bool set_current_loop(PyObject* loop) {
  PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
  PyRef r = asyncio ? PyRef::steal(PyObject_CallMethod(asyncio.get(), "set_event_loop", "O", loop))
                    : PyRef();
  return static_cast<bool>(r);
}

bool prepare_python_types() {
  return greenlet::import_api() && init_input_type() && init_request_bound_type();
}

int serve_app(const WorkerContext& ctx, PyObject* loop_obj, PyObject* app,
              ModuleFileReporter& reload_reporter) {
  const config::Config& cfg = *ctx.config;
  auto boot_failure = [&](const std::string& what) {
    spdlog::critical("worker {} cannot start: {}", ctx.worker_id, what);
    ControlLink::boot_error(ctx.control_fd, ctx.worker_id);
    return kExitBootError;
  };
  PyRef loop = PyRef::borrow(loop_obj);
  Server server(ctx, loop.get(), app);
  if (!server.start()) return boot_failure(fetch_exception_text());
  if (!add_signal_handlers(loop.get())) return boot_failure(fetch_exception_text());
  ControlLink::ready(ctx.control_fd, ctx.worker_id);
  reload_reporter.start(loop.get());  // modules imported later, during requests
  spdlog::info("worker {} ready ({} loop, {} cores)", ctx.worker_id, cfg.app.loop,
               cfg.server.cores);

  PyRef r = PyRef::steal(PyObject_CallMethod(loop.get(), "run_forever", nullptr));
  if (!r) spdlog::error("the event loop failed: {}", fetch_exception_text());
  server.shutdown();
  // Before the app's exit hooks (which may hang or die), and before the line saying so.
  access_log::flush();
  spdlog::info("worker {} stopped after {} requests", ctx.worker_id, server.requests());
  return kExitOk;
}

void finish_python() {
  // Flush the app's streams; skip Py_Finalize: it would run the destructors of objects
  // the app left suspended in greenlets, which may block, and the process ends anyway.
  PyRef atexit = PyRef::steal(PyImport_ImportModule("atexit"));
  if (atexit) {
    PyRef r = PyRef::steal(PyObject_CallMethod(atexit.get(), "_run_exitfuncs", nullptr));
  }
  PyErr_Clear();
  PyObject* out = PySys_GetObject("stdout");
  PyObject* err = PySys_GetObject("stderr");
  if (out) Py_XDECREF(PyObject_CallMethod(out, "flush", nullptr));
  if (err) Py_XDECREF(PyObject_CallMethod(err, "flush", nullptr));
  PyErr_Clear();
  log::flush();
}

int run_worker(const WorkerContext& ctx) noexcept {
  try {
    reset_signals();
    // SIGUSR2 (the stacks) must not end a worker that is still starting; the loop takes it
    // over once the worker is ready.
    ::signal(SIGUSR2, SIG_IGN);
    for (int fd : ctx.close_fds) ::close(fd);
    const config::Config& cfg = *ctx.config;
    if (Status s = access_log::setup(cfg.log, ctx.worker_id); !s.ok())
      spdlog::error("access log off: {}", s.message());
    // Before Python starts, which then builds sys.stdout and sys.stderr over the pipes.
    app_output::StopOnExit stop_app_output;
    if (Status s = app_output::start(cfg.log.format == "json",
                                     "worker " + std::to_string(ctx.worker_id), ctx.worker_id);
        !s.ok())
      spdlog::error("the app's output goes to the master's standard streams: {}", s.message());
    for (const auto& [k, v] : cfg.app.env) setenv(k.c_str(), v.c_str(), 1);
    if (!cfg.app.chdir.empty() && chdir(cfg.app.chdir.c_str()) != 0) {
      spdlog::critical("worker {}: chdir {}: {}", ctx.worker_id, cfg.app.chdir,
                       errno_string(errno));
      ControlLink::boot_error(ctx.control_fd, ctx.worker_id);
      return kExitBootError;
    }
    Status st = init_python(cfg);
    if (!st.ok()) {
      spdlog::critical("worker {}: {}", ctx.worker_id, st.message());
      ControlLink::boot_error(ctx.control_fd, ctx.worker_id);
      return kExitBootError;
    }
    int rc = serve(ctx);
    finish_python();
    return rc;
  } catch (const std::exception& e) {
    spdlog::critical("worker {}: {}", ctx.worker_id, e.what());
    return kExitBootError;
  } catch (...) {
    return kExitBootError;
  }
}

}  // namespace aiowsgi::worker
