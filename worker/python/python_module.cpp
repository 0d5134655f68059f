#include "worker/python/python_module.h"

#include <spdlog/spdlog.h>

#include "worker/python/aiowsgi_bootstrap_py.h"  // generated from aiowsgi_bootstrap.py
#include "worker/python/core_threads_py.h"       // generated from core_threads.py
#include "worker/python/embedded_python.h"
#include "worker/python/greenlet_api.h"
#include "worker/python/py_ref.h"
#include "worker/python/request_host.h"
#include "worker/python/thread_identity.h"

namespace aiowsgi::worker {

namespace {

PyObject* g_module = nullptr;        // borrowed from sys.modules after import
PyObject* g_file_wrapper = nullptr;  // strong

// The parts of the module not on the request hot path are Python: aiowsgi_bootstrap.py.

PyObject* mod_log(PyObject*, PyObject* args) noexcept {
  int level;
  const char* text;
  Py_ssize_t len;
  if (!PyArg_ParseTuple(args, "is#", &level, &text, &len)) return nullptr;
  std::string_view msg(text, static_cast<size_t>(len));
  if (level >= 40) {
    spdlog::error("{}", msg);
  } else if (level >= 30) {
    spdlog::warn("{}", msg);
  } else {
    spdlog::info("{}", msg);
  }
  Py_RETURN_NONE;
}

// True if the client of the current request closed its connection (False outside a core).
PyObject* mod_client_gone(PyObject*, PyObject*) noexcept {
  RequestHost* host = current_host();
  return PyBool_FromLong(host != nullptr && host->client_gone());
}

PyMethodDef kModuleMethods[] = {
    {"_log", mod_log, METH_VARARGS, "_log(level, text): one line to the server log"},
    {"_client_gone", mod_client_gone, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModuleDef = {PyModuleDef_HEAD_INIT, "aiowsgi",
                          "aiowsgi: the worker's asyncio loop, seen from a WSGI request.", -1,
                          kModuleMethods};

PyObject* init_module() noexcept { return PyModule_Create(&kModuleDef); }

}  // namespace

void register_builtin_module() noexcept { PyImport_AppendInittab("aiowsgi", init_module); }

bool setup_python_module(const WorkerContext& ctx, PyObject* loop) noexcept {
  PyRef mod = PyRef::steal(PyImport_ImportModule("aiowsgi"));
  if (!mod) return false;
  PyObject* dict = PyModule_GetDict(mod.get());
  if (!run_embedded_python(embedded::kAiowsgiBootstrapFile, embedded::kAiowsgiBootstrapSource,
                           dict))
    return false;
  PyRef wid = PyRef::steal(PyLong_FromLong(ctx.worker_id));
  PyRef np = PyRef::steal(PyLong_FromLong(ctx.num_workers));
  if (!wid || !np || PyDict_SetItemString(dict, "_worker_id", wid.get()) < 0 ||
      PyDict_SetItemString(dict, "_numproc", np.get()) < 0 ||
      PyDict_SetItemString(dict, "_loop", loop) < 0)
    return false;
  if (PyObject* t = greenlet::core_type(); t && PyDict_SetItemString(dict, "CoreGreenlet", t) < 0)
    return false;
  g_file_wrapper = PyDict_GetItemString(dict, "FileWrapper");
  Py_XINCREF(g_file_wrapper);
  g_module = mod.get();
  // Each core a thread of its own (thread_identity.h): the Python half first, while
  // _thread.get_ident is still the thread's own, which it keeps.
  if (!run_embedded_python(embedded::kCoreThreadsFile, embedded::kCoreThreadsSource, dict) ||
      !call_module_helper("_install_core_threads", nullptr) || !thread_identity::install())
    return false;
  return true;
}

PyObject* load_app(const config::AppConfig& app) noexcept {
  if (g_module == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "aiowsgi module not set up");
    return nullptr;
  }
  PyObject* loader = PyDict_GetItemString(PyModule_GetDict(g_module), "_load_app");
  if (loader == nullptr) return nullptr;
  return PyObject_CallFunction(loader, "sss", app.wsgi_file.c_str(), app.module.c_str(),
                               app.callable.c_str());
}

bool call_module_helper(const char* name, PyObject* args) noexcept {
  if (g_module == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "aiowsgi module not set up");
    return false;
  }
  PyObject* fn = PyDict_GetItemString(PyModule_GetDict(g_module), name);  // borrowed
  if (fn == nullptr) {
    PyErr_Format(PyExc_RuntimeError, "aiowsgi module has no %s", name);
    return false;
  }
  PyRef r = PyRef::steal(args ? PyObject_Call(fn, args, nullptr) : PyObject_CallNoArgs(fn));
  return static_cast<bool>(r);
}

bool notify_client_gone(int core_id) noexcept {
  if (g_module == nullptr) return false;
  PyObject* waiters = PyDict_GetItemString(PyModule_GetDict(g_module), "_gone_waiters");
  if (waiters == nullptr) return false;
  PyRef key = PyRef::steal(PyLong_FromLong(core_id));
  PyRef cb = key ? PyRef::borrow(PyDict_GetItemWithError(waiters, key.get())) : PyRef();
  if (!cb) {
    PyErr_Clear();
    return false;
  }
  PyRef r = PyRef::steal(PyObject_CallNoArgs(cb.get()));
  if (!r) spdlog::error("cancelling an await_ after a disconnect: {}", fetch_exception_text());
  return true;
}

bool is_file_wrapper(PyObject* o) noexcept {
  return g_file_wrapper != nullptr && Py_TYPE(o) == reinterpret_cast<PyTypeObject*>(g_file_wrapper);
}

std::string fetch_exception_text() {
  if (!PyErr_Occurred()) return "";
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
  PyRef t = PyRef::steal(type), v = PyRef::steal(value), b = PyRef::steal(tb);
  std::string text;
  PyRef tbmod = PyRef::steal(PyImport_ImportModule("traceback"));
  if (tbmod) {
    PyRef lines = PyRef::steal(PyObject_CallMethod(tbmod.get(), "format_exception", "OOO",
                                                   t ? t.get() : Py_None, v ? v.get() : Py_None,
                                                   b ? b.get() : Py_None));
    if (lines) {
      PyRef empty = PyRef::steal(PyUnicode_FromString(""));
      PyRef joined = PyRef::steal(PyUnicode_Join(empty.get(), lines.get()));
      if (joined) {
        const char* s = PyUnicode_AsUTF8(joined.get());
        if (s) text = s;
      }
    }
  }
  if (text.empty() && v) {
    PyRef s = PyRef::steal(PyObject_Str(v.get()));
    const char* c = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    text = c ? c : "(unprintable exception)";
  }
  PyErr_Clear();
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace aiowsgi::worker
