#include "worker/python/greenlet_api.h"

#include <greenlet.h>

#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace aiowsgi::worker::greenlet {

namespace {
PyObject* g_empty_args = nullptr;
// greenlet.greenlet with one slot, _aiowsgi_core: the id a core's greenlet carries. A slot and
// not an attribute in the instance __dict__, which would cost every core a dict of its own.
PyObject* g_core_type = nullptr;

// AddressSanitizer builds only. greenlet runs every greenlet on the one C stack, copying
// slices of it to the heap and back; frames that are switched out never return, so the
// shadow of the stack below the current frame keeps their poison, and the next greenlet to
// run there (a fresh core's first request, say) trips over it with a false report or an
// ASan internal CHECK (greenlet #113). Clearing that region's shadow before each switch
// costs nothing in the product build (the function is empty there).
inline void clear_stale_stack_poison() noexcept {
#if defined(__SANITIZE_ADDRESS__)
  // Deeper than any frame the app and the server run between two switches.
  constexpr uintptr_t kSpan = 1 << 20;
  char here;
  uintptr_t sp = reinterpret_cast<uintptr_t>(&here);
  __asan_unpoison_memory_region(reinterpret_cast<void*>(sp - kSpan), kSpan);
#endif
}
}  // namespace

bool import_api() noexcept {
  PyGreenlet_Import();
  if (_PyGreenlet_API == nullptr) return false;
  if (g_core_type != nullptr) return true;  // one type per process, however often called
  g_empty_args = PyTuple_New(0);
  if (g_empty_args == nullptr) return false;
  g_core_type = PyObject_CallFunction(reinterpret_cast<PyObject*>(&PyType_Type), "s(O){s(s)ss}",
                                      "CoreGreenlet", &PyGreenlet_Type, "__slots__",
                                      "_aiowsgi_core", "__module__", "aiowsgi");
  return g_core_type != nullptr;
}

PyObject* create_core(PyObject* run, PyObject* parent, PyObject* core_id) noexcept {
  PyObject* g = PyObject_CallFunctionObjArgs(g_core_type, run, parent, nullptr);
  if (g != nullptr && PyObject_SetAttrString(g, "_aiowsgi_core", core_id) < 0) Py_CLEAR(g);
  return g;
}

PyObject* core_type() noexcept { return g_core_type; }

PyObject* current() noexcept { return reinterpret_cast<PyObject*>(PyGreenlet_GetCurrent()); }

PyObject* switch_to(PyObject* g) noexcept {
  clear_stale_stack_poison();
  PyObject* r = PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(g), g_empty_args, nullptr);
  // Back in this greenlet, perhaps through a switch the app made in Python (which this file
  // never sees): the stack below is stale again.
  clear_stale_stack_poison();
  return r;
}

PyObject* kill(PyObject* g) noexcept {
  clear_stale_stack_poison();
  PyObject* r =
      PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(g), PyExc_GreenletExit, nullptr, nullptr);
  clear_stale_stack_poison();
  return r;
}

bool exception_is_exit() noexcept { return PyErr_ExceptionMatches(PyExc_GreenletExit) != 0; }

bool active(PyObject* g) noexcept { return PyGreenlet_ACTIVE(reinterpret_cast<PyGreenlet*>(g)); }

}  // namespace aiowsgi::worker::greenlet
