#include "worker/python/request_bound.h"

#include <structmember.h>

#include <cstddef>
#include <cstring>

#include "worker/python/request_host.h"

namespace aiowsgi::worker {

namespace {

struct BoundObject {
  PyObject_HEAD vectorcallfunc vectorcall;  // first after the head: CPython calls through it
  RequestHost* core;
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

bool rebind_to_request(PyRef* slot, vectorcallfunc fn, RequestHost* core,
                       uint64_t serial) noexcept {
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

RequestHost* bound_core(PyObject* callable, const char* what) noexcept {
  auto* o = reinterpret_cast<BoundObject*>(callable);
  if (o->core->serial() != o->serial) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s() of a request that has ended: it belongs to that request only", what);
    return nullptr;
  }
  return o->core;
}

PyObject* start_response_call(PyObject* self, PyObject* const* args, size_t nargsf,
                              PyObject* kwnames) noexcept {
  RequestHost* core = bound_core(self, "start_response");
  if (core == nullptr) return nullptr;
  Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject* status = nullptr;
  PyObject* headers = nullptr;
  PyObject* exc_info = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 0) status = args[0];
  if (nargs > 1) headers = args[1];
  if (nargs > 2) exc_info = args[2];
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    const char* k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, i));
    PyObject* v = args[nargs + i];
    if (k && strcmp(k, "status") == 0)
      status = v;
    else if (k && strcmp(k, "response_headers") == 0)
      headers = v;
    else if (k && strcmp(k, "headers") == 0)
      headers = v;
    else if (k && strcmp(k, "exc_info") == 0)
      exc_info = v;
    else {
      PyErr_Format(PyExc_TypeError, "start_response() got an unexpected keyword argument '%s'",
                   k ? k : "?");
      return nullptr;
    }
  }
  if (nargs > 3 || status == nullptr || headers == nullptr) {
    PyErr_SetString(PyExc_TypeError,
                    "start_response() takes status, response_headers and optional exc_info");
    return nullptr;
  }
  if (!core->start_response(status, headers, exc_info)) return nullptr;
  return PyRef::borrow(core->write_callable()).release();
}

PyObject* write_call(PyObject* self, PyObject* const* args, size_t nargsf,
                     PyObject* kwnames) noexcept {
  RequestHost* core = bound_core(self, "write");
  if (core == nullptr) return nullptr;
  if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0)) {
    PyErr_SetString(PyExc_TypeError, "write() takes exactly one argument, the bytes to send");
    return nullptr;
  }
  PyObject* data = args[0];
  if (!core->on_own_greenlet()) {
    // Sending may have to wait for the socket, and only the request's own core can wait.
    PyErr_SetString(PyExc_RuntimeError,
                    "write() called outside its request's core (from a loop callback or "
                    "another greenlet)");
    return nullptr;
  }
  if (!core->headers_set()) {
    PyErr_SetString(PyExc_AssertionError, "write() called before start_response()");
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  bool ok = core->write_body(static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
  PyBuffer_Release(&view);
  if (!ok) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_OSError, "client disconnected");
    return nullptr;
  }
  Py_RETURN_NONE;
}

}  // namespace aiowsgi::worker
