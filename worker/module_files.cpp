#include "worker/module_files.h"

#include <errno.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "common/watch_report.h"
#include "worker/python/python_module.h"

namespace aiowsgi::worker {

namespace {

ModuleFileReporter* g_reporter = nullptr;  // the one the loop callback reaches
PyMethodDef kTickDef = {"_aiowsgi_reload_scan", nullptr, METH_NOARGS, nullptr};

// The new paths from the Python scan; empty on any failure (logged once).
std::vector<std::string> scan(const std::string& app_file) {
  std::vector<std::string> out;
  PyRef mod = PyRef::steal(PyImport_ImportModule("aiowsgi"));
  PyRef fn = mod ? PyRef::steal(PyObject_GetAttrString(mod.get(), "_reload_new_files")) : PyRef();
  PyRef always =
      PyRef::steal(app_file.empty() ? PyTuple_New(0) : Py_BuildValue("(s)", app_file.c_str()));
  PyRef list = fn && always ? PyRef::steal(PyObject_CallOneArg(fn.get(), always.get())) : PyRef();
  if (!list || !PyList_Check(list.get())) {
    static bool warned = false;
    if (!warned) {
      warned = true;
      spdlog::warn("auto-reload: listing the loaded modules failed: {}", fetch_exception_text());
    }
    PyErr_Clear();
    return out;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list.get()); ++i) {
    PyObject* item = PyList_GET_ITEM(list.get(), i);  // borrowed
    PyRef bytes = PyRef::steal(PyUnicode_EncodeFSDefault(item));
    if (!bytes) {
      PyErr_Clear();  // not encodable as a file name: cannot be watched anyway
      continue;
    }
    out.emplace_back(PyBytes_AS_STRING(bytes.get()), PyBytes_GET_SIZE(bytes.get()));
  }
  return out;
}

}  // namespace

ModuleFileReporter::ModuleFileReporter(const WorkerContext& ctx)
    : enabled_(ctx.config && ctx.config->app.reload && ctx.control_fd >= 0),
      fd_(ctx.control_fd),
      worker_id_(ctx.worker_id),
      app_file_(ctx.config ? ctx.config->app.wsgi_file : "") {
  if (enabled_) g_reporter = this;
}

ModuleFileReporter::~ModuleFileReporter() {
  if (g_reporter == this) g_reporter = nullptr;
}

void ModuleFileReporter::report() noexcept {
  if (!enabled_) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // a load error being reported must survive the scan
  try {
    for (std::string& p : pack_watch_payloads(scan(app_file_))) pending_.push_back(std::move(p));
    app_file_.clear();
  } catch (const std::exception& e) {
    spdlog::warn("auto-reload: {}", e.what());
  }
  PyErr_Restore(type, value, tb);
  flush();
}

void ModuleFileReporter::flush() noexcept {
  while (!pending_.empty()) {
    int err = send_watch_report(fd_, worker_id_, pending_.front());
    if (err != 0) {
      // EAGAIN: the master is behind; the rest goes at the next scan. Anything else: the
      // master is gone or refuses, and retrying would not help.
      if (err != EAGAIN && err != EWOULDBLOCK) {
        spdlog::warn("auto-reload: sending the module files failed: {}", errno_string(err));
        pending_.clear();
      }
      return;
    }
    pending_.pop_front();
  }
}

void ModuleFileReporter::start(PyObject* loop) noexcept {
  if (!enabled_) return;
  kTickDef.ml_meth = &ModuleFileReporter::tick_cb;
  loop_ = PyRef::borrow(loop);
  tick_fn_ = PyRef::steal(PyCFunction_New(&kTickDef, nullptr));
  if (!tick_fn_) {
    PyErr_Clear();
    return;
  }
  schedule();
}

void ModuleFileReporter::schedule() noexcept {
  PyRef r = PyRef::steal(
      PyObject_CallMethod(loop_.get(), "call_later", "dO", kRescanSeconds, tick_fn_.get()));
  if (!r) {
    spdlog::warn("auto-reload: scheduling the module scan failed: {}", fetch_exception_text());
  }
}

PyObject* ModuleFileReporter::tick_cb(PyObject*, PyObject*) noexcept {
  if (ModuleFileReporter* self = g_reporter) {
    self->report();
    self->schedule();
  }
  Py_RETURN_NONE;
}

}  // namespace aiowsgi::worker
