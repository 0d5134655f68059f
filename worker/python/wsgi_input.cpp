#include "worker/python/wsgi_input.h"

#include <cstring>
#include <string>

#include "worker/python/py_ref.h"
#include "worker/python/request_host.h"

namespace aiowsgi::worker {

namespace {

struct InputObject {
  PyObject_HEAD RequestHost* core;
  uint64_t serial;  // the core's request serial this stream belongs to
};

PyTypeObject* g_input_type = nullptr;

// Appends up to |limit| bytes (SIZE_MAX: all) to *out, stopping after '\n' when |line|.
// Returns false with a Python exception set on a client error.
bool read_into(InputObject* self, size_t limit, bool line, std::string* out) {
  RequestHost* core = self->core;
  if (core->serial() != self->serial) {
    PyErr_SetString(PyExc_RuntimeError,
                    "wsgi.input of a request that has ended: it belongs to that request only");
    return false;
  }
  if (!core->on_own_greenlet()) {
    // Reading may have to wait for the client, and only the request's own core can wait.
    PyErr_SetString(PyExc_RuntimeError,
                    "wsgi.input read outside its request's core (from a loop callback or "
                    "another greenlet)");
    return false;
  }
  while (out->size() < limit) {
    switch (core->fill_body()) {
      case BodyRead::kData:
        break;
      case BodyRead::kEnd:
        return true;
      case BodyRead::kPythonError:
        return false;  // the app gets the exception
    }
    std::string& body = core->body();
    size_t& pos = core->body_pos();
    size_t avail = body.size() - pos;
    size_t take = std::min(avail, limit - out->size());
    if (line) {
      const void* nl = memchr(body.data() + pos, '\n', take);
      if (nl != nullptr) {
        size_t n = static_cast<size_t>(static_cast<const char*>(nl) - (body.data() + pos)) + 1;
        out->append(body.data() + pos, n);
        pos += n;
        return true;
      }
    }
    out->append(body.data() + pos, take);
    pos += take;
  }
  return true;
}

bool parse_size(PyObject* const* args, Py_ssize_t nargs, size_t* limit) {
  *limit = SIZE_MAX;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "expected at most one argument");
    return false;
  }
  if (nargs == 1 && args[0] != Py_None) {
    Py_ssize_t n = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) return false;
    if (n >= 0) *limit = static_cast<size_t>(n);
  }
  return true;
}

PyObject* input_read(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  size_t limit;
  if (!parse_size(args, nargs, &limit)) return nullptr;
  std::string out;
  if (!read_into(reinterpret_cast<InputObject*>(self), limit, false, &out)) return nullptr;
  return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

PyObject* input_readline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  size_t limit;
  if (!parse_size(args, nargs, &limit)) return nullptr;
  std::string out;
  if (!read_into(reinterpret_cast<InputObject*>(self), limit, true, &out)) return nullptr;
  return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

PyObject* input_readlines(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  size_t hint;
  if (!parse_size(args, nargs, &hint)) return nullptr;
  PyObject* list = PyList_New(0);
  if (list == nullptr) return nullptr;
  size_t total = 0;
  for (;;) {
    std::string line;
    if (!read_into(reinterpret_cast<InputObject*>(self), SIZE_MAX, true, &line)) {
      Py_DECREF(list);
      return nullptr;
    }
    if (line.empty()) break;
    total += line.size();
    PyObject* b = PyBytes_FromStringAndSize(line.data(), static_cast<Py_ssize_t>(line.size()));
    if (b == nullptr || PyList_Append(list, b) < 0) {
      Py_XDECREF(b);
      Py_DECREF(list);
      return nullptr;
    }
    Py_DECREF(b);
    if (hint != SIZE_MAX && hint > 0 && total >= hint) break;
  }
  return list;
}

PyObject* input_iternext(PyObject* self) noexcept {
  std::string line;
  if (!read_into(reinterpret_cast<InputObject*>(self), SIZE_MAX, true, &line)) return nullptr;
  if (line.empty()) return nullptr;  // StopIteration
  return PyBytes_FromStringAndSize(line.data(), static_cast<Py_ssize_t>(line.size()));
}

// The stream's request is the host's current one (else RuntimeError), and its body was read
// whole before the app ran (else io.UnsupportedOperation, as an unseekable file raises).
bool check_seekable(InputObject* self) {
  if (self->core->serial() != self->serial) {
    PyErr_SetString(PyExc_RuntimeError,
                    "wsgi.input of a request that has ended: it belongs to that request only");
    return false;
  }
  if (self->core->buffered_body_length()) return true;
  PyObject* unsupported = PyExc_OSError;
  PyRef io = PyRef::steal(PyImport_ImportModule("io"));
  PyRef type =
      io ? PyRef::steal(PyObject_GetAttrString(io.get(), "UnsupportedOperation")) : PyRef();
  if (type) unsupported = type.get();
  PyErr_Clear();
  PyErr_SetString(unsupported,
                  "wsgi.input is not seekable: the body is read from the client as the app asks "
                  "for it (set [limits] buffer_body_bytes to have it read whole first)");
  return false;
}

PyObject* input_seekable(PyObject* self, PyObject*) noexcept {
  auto* in = reinterpret_cast<InputObject*>(self);
  return PyBool_FromLong(in->core->serial() == in->serial &&
                         in->core->buffered_body_length().has_value());
}

PyObject* input_tell(PyObject* self, PyObject*) noexcept {
  auto* in = reinterpret_cast<InputObject*>(self);
  if (!check_seekable(in)) return nullptr;
  return PyLong_FromUnsignedLongLong(in->core->body_tell());
}

// seek(offset, whence=0) as io.RawIOBase: from the start (0), the current position (1) or
// the end (2); the new position is returned. Past the end is allowed, before the start not.
PyObject* input_seek(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
  auto* in = reinterpret_cast<InputObject*>(self);
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "seek(offset, whence=0)");
    return nullptr;
  }
  long long offset = PyLong_AsLongLong(args[0]);
  if (offset == -1 && PyErr_Occurred()) return nullptr;
  long whence = 0;
  if (nargs == 2) {
    whence = PyLong_AsLong(args[1]);
    if (whence == -1 && PyErr_Occurred()) return nullptr;
  }
  if (!check_seekable(in)) return nullptr;
  long long base = 0;
  if (whence == 1) {
    base = static_cast<long long>(in->core->body_tell());
  } else if (whence == 2) {
    base = static_cast<long long>(*in->core->buffered_body_length());
  } else if (whence != 0) {
    PyErr_Format(PyExc_ValueError, "invalid whence (%ld, should be 0, 1 or 2)", whence);
    return nullptr;
  }
  if (offset < -base) {
    PyErr_Format(PyExc_ValueError, "negative seek position %lld", base + offset);
    return nullptr;
  }
  const uint64_t pos = static_cast<uint64_t>(base + offset);
  in->core->body_seek(pos);
  return PyLong_FromUnsignedLongLong(pos);
}

PyObject* input_iter(PyObject* self) noexcept {
  Py_INCREF(self);
  return self;
}

void input_dealloc(PyObject* self) noexcept {
  PyTypeObject* tp = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(tp);
}

PyMethodDef kInputMethods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read)), METH_FASTCALL,
     "read(size=-1) -> bytes"},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readline)),
     METH_FASTCALL, "readline(size=-1) -> bytes"},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readlines)),
     METH_FASTCALL, "readlines(hint=-1) -> list of bytes"},
    {"seek", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_seek)), METH_FASTCALL,
     "seek(offset, whence=0) -> int; a buffered body only ([limits] "
     "buffer_body_bytes)"},
    {"tell", input_tell, METH_NOARGS, "tell() -> int; a buffered body only"},
    {"seekable", input_seekable, METH_NOARGS,
     "seekable() -> bool: true when the body was read whole before the app ran"},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot kInputSlots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(input_dealloc)},
                             {Py_tp_iter, reinterpret_cast<void*>(input_iter)},
                             {Py_tp_iternext, reinterpret_cast<void*>(input_iternext)},
                             {Py_tp_methods, kInputMethods},
                             {Py_tp_doc, const_cast<char*>("wsgi.input: the request body")},
                             {0, nullptr}};

PyType_Spec kInputSpec = {"aiowsgi.Input", sizeof(InputObject), 0, Py_TPFLAGS_DEFAULT, kInputSlots};

}  // namespace

bool init_input_type() noexcept {
  g_input_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kInputSpec));
  return g_input_type != nullptr;
}

PyObject* new_input(RequestHost* core) noexcept {
  InputObject* o = PyObject_New(InputObject, g_input_type);
  if (o == nullptr) return nullptr;
  o->core = core;
  o->serial = core->serial();
  return reinterpret_cast<PyObject*>(o);
}

}  // namespace aiowsgi::worker
