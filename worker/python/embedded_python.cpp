#include "worker/python/embedded_python.h"

#include <cstring>

#include "worker/python/py_ref.h"

namespace aiowsgi::worker {

namespace {

// linecache.cache[file_name] = (size, None, lines, file_name): a None mtime is an entry
// linecache.checkcache() keeps (it cannot stat the file). Best effort: without it tracebacks
// still name the file and line, only without the line's text.
void register_lines(const char* file_name, const char* source) noexcept {
  PyRef linecache = PyRef::steal(PyImport_ImportModule("linecache"));
  PyRef cache =
      linecache ? PyRef::steal(PyObject_GetAttrString(linecache.get(), "cache")) : PyRef();
  auto size = static_cast<Py_ssize_t>(strlen(source));
  PyRef text = PyRef::steal(PyUnicode_DecodeUTF8(source, size, "replace"));
  PyRef lines = text ? PyRef::steal(PyUnicode_Splitlines(text.get(), 1)) : PyRef();
  PyRef entry = lines ? PyRef::steal(Py_BuildValue("(nOOs)", size, Py_None, lines.get(), file_name))
                      : PyRef();
  if (!cache || !entry ||
      PyObject_SetItem(cache.get(), PyTuple_GET_ITEM(entry.get(), 3), entry.get()) < 0) {
    PyErr_Clear();
  }
}

}  // namespace

bool run_embedded_python(const char* file_name, const char* source, PyObject* dict) noexcept {
  register_lines(file_name, source);
  PyRef code = PyRef::steal(Py_CompileString(source, file_name, Py_file_input));
  if (!code) return false;
  // PyRun_String gave the namespace __builtins__; keep that.
  if (PyDict_GetItemString(dict, "__builtins__") == nullptr &&
      PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
    return false;
  PyRef r = PyRef::steal(PyEval_EvalCode(code.get(), dict, dict));
  return static_cast<bool>(r);
}

}  // namespace aiowsgi::worker
