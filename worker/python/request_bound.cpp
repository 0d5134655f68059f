#include "worker/python/request_bound.h"

#include <structmember.h>

#include <cstddef>

#include "worker/core.h"

namespace aiowsgi::worker {

namespace {

struct BoundObject {
  PyObject_HEAD vectorcallfunc vectorcall;  // first after the head: CPython calls through it
  Core* core;
  uint64_t serial;  // the core's request serial this callable belongs to
};

PyTypeObject* g_bound_type = nullptr;

void bound_dealloc(PyObject* self) noexcept {
  PyTypeObject* tp = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(tp);
}

PyMemberDef kBoundMembers[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BoundObject, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot kBoundSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(bound_dealloc)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_members, kBoundMembers},
    {Py_tp_doc, const_cast<char*>("start_response or write(), valid during its own request")},
    {0, nullptr}};

PyType_Spec kBoundSpec = {"aiowsgi.RequestCallable", sizeof(BoundObject), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL, kBoundSlots};

}  // namespace

bool init_request_bound_type() noexcept {
  g_bound_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kBoundSpec));
  return g_bound_type != nullptr;
}

bool rebind_to_request(PyRef* slot, vectorcallfunc fn, Core* core, uint64_t serial) noexcept {
  if (!*slot || Py_REFCNT(slot->get()) != 1) {
    BoundObject* o = PyObject_New(BoundObject, g_bound_type);
    if (o == nullptr) return false;
    o->vectorcall = fn;
    o->core = core;
    slot->reset(reinterpret_cast<PyObject*>(o));
  }
  reinterpret_cast<BoundObject*>(slot->get())->serial = serial;
  return true;
}

Core* bound_core(PyObject* callable, const char* what) noexcept {
  auto* o = reinterpret_cast<BoundObject*>(callable);
  if (o->core->serial() != o->serial) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s() of a request that has ended: it belongs to that request only", what);
    return nullptr;
  }
  return o->core;
}

}  // namespace aiowsgi::worker
