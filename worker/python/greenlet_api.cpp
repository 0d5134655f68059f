#include "worker/python/greenlet_api.h"

#include <greenlet.h>

namespace aiowsgi::worker::greenlet {

namespace {
PyObject* g_empty_args = nullptr;
}

bool import_api() noexcept {
  PyGreenlet_Import();
  if (_PyGreenlet_API == nullptr) return false;
  g_empty_args = PyTuple_New(0);
  return g_empty_args != nullptr;
}

PyObject* create(PyObject* run, PyObject* parent) noexcept {
  return reinterpret_cast<PyObject*>(PyGreenlet_New(run, reinterpret_cast<PyGreenlet*>(parent)));
}

PyObject* current() noexcept { return reinterpret_cast<PyObject*>(PyGreenlet_GetCurrent()); }

PyObject* switch_to(PyObject* g) noexcept {
  return PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(g), g_empty_args, nullptr);
}

PyObject* kill(PyObject* g) noexcept {
  return PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(g), PyExc_GreenletExit, nullptr, nullptr);
}

bool exception_is_exit() noexcept { return PyErr_ExceptionMatches(PyExc_GreenletExit) != 0; }

bool active(PyObject* g) noexcept { return PyGreenlet_ACTIVE(reinterpret_cast<PyGreenlet*>(g)); }

}  // namespace aiowsgi::worker::greenlet
