#include "worker/python/greenlet_api.h"

#include <greenlet.h>
#include <structmember.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "worker/python/thread_identity.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace aiowsgi::worker::greenlet {

namespace {
PyObject* g_empty_args = nullptr;
// greenlet.greenlet with one slot, _aiowsgi_core: the id a core's greenlet carries. A slot and
// not an attribute in the instance __dict__, which would cost every core a dict of its own.
PyObject* g_core_type = nullptr;
Py_ssize_t g_core_slot_offset = -1;  // where an instance keeps its _aiowsgi_core slot

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
// The identity (thread_identity.h) of the core whose greenlet |g| is; nullptr for none.
thread_identity::Identity* identity_of(PyObject* g) noexcept {
  long n = core_id_of(g);
  return n < 0 ? nullptr : thread_identity::of_core(n);
}

// CoreGreenlet.switch() and .throw(): the app's own ways into a core (a loop callback doing
// me.switch(), a task waking a request) are switches like the server's, so the core's code
// runs as its core's thread and the caller's identity comes back with control.
PyObject* core_switch(PyObject* self, PyObject* args, PyObject* kwargs) noexcept {
  thread_identity::Identity* was = thread_identity::enter(identity_of(self));
  clear_stale_stack_poison();
  PyObject* r = PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(self), args, kwargs);
  clear_stale_stack_poison();
  thread_identity::enter(was);
  return r;
}

PyObject* core_throw(PyObject* self, PyObject* args) noexcept {
  PyObject* typ = PyExc_GreenletExit;
  PyObject* val = nullptr;
  PyObject* tb = nullptr;
  if (!PyArg_ParseTuple(args, "|OOO:throw", &typ, &val, &tb)) return nullptr;
  thread_identity::Identity* was = thread_identity::enter(identity_of(self));
  clear_stale_stack_poison();
  PyObject* r = PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(self), typ, val, tb);
  clear_stale_stack_poison();
  thread_identity::enter(was);
  return r;
}

PyMethodDef kCoreSwitchDef = {
    "switch", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(core_switch)),
    METH_VARARGS | METH_KEYWORDS, "switch(*args, **kwargs): greenlet.switch, into a core."};
PyMethodDef kCoreThrowDef = {"throw", reinterpret_cast<PyCFunction>(core_throw), METH_VARARGS,
                             "throw([typ, [val, [tb]]]): greenlet.throw, into a core."};

bool add_core_methods(PyObject* type) noexcept {
  auto* t = reinterpret_cast<PyTypeObject*>(type);
  PyObject* slot = PyDict_GetItemString(t->tp_dict, "_aiowsgi_core");  // borrowed
  if (slot == nullptr || Py_TYPE(slot) != &PyMemberDescr_Type) {
    PyErr_SetString(PyExc_RuntimeError, "CoreGreenlet has no _aiowsgi_core slot");
    return false;
  }
  g_core_slot_offset = reinterpret_cast<PyMemberDescrObject*>(slot)->d_member->offset;
  for (PyMethodDef* def : {&kCoreSwitchDef, &kCoreThrowDef}) {
    PyObject* descr = PyDescr_NewMethod(t, def);
    if (descr == nullptr) return false;
    int rc = PyObject_SetAttrString(type, def->ml_name, descr);
    Py_DECREF(descr);
    if (rc < 0) return false;
  }
  return true;
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
  if (g_core_type == nullptr) return false;
  if (!add_core_methods(g_core_type)) {
    Py_CLEAR(g_core_type);
    return false;
  }
  return true;
}

PyObject* create_core(PyObject* run, PyObject* parent, PyObject* core_id) noexcept {
  PyObject* g = PyObject_CallFunctionObjArgs(g_core_type, run, parent, nullptr);
  if (g != nullptr && PyObject_SetAttrString(g, "_aiowsgi_core", core_id) < 0) Py_CLEAR(g);
  return g;
}

PyObject* core_type() noexcept { return g_core_type; }

long core_id_of(PyObject* g) noexcept {
  // The slot read in place: no attribute name to build and look up on every call.
  if (g_core_type == nullptr || g_core_slot_offset < 0 ||
      !PyObject_TypeCheck(g, reinterpret_cast<PyTypeObject*>(g_core_type)))
    return -1;
  PyObject* id = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(g) + g_core_slot_offset);
  if (id == nullptr || !PyLong_CheckExact(id)) return -1;
  long n = PyLong_AsLong(id);
  if (n == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return -1;
  }
  return n;
}

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
