#include "worker/python/request_context.h"

#include <Python.h>

namespace aiowsgi::worker::request_context {

namespace {
PyObject* g_base = nullptr;  // owned; nullptr while the base context is empty
}  // namespace

bool capture_base() noexcept {
  PyObject* ctx = PyContext_CopyCurrent();
  if (ctx == nullptr) return false;
  Py_ssize_t n = PyObject_Length(ctx);
  if (n < 0) {
    Py_DECREF(ctx);
    return false;
  }
  if (n == 0) Py_CLEAR(ctx);
  Py_XSETREF(g_base, ctx);
  return true;
}

bool begin() noexcept {
  PyObject* fresh = nullptr;
  if (g_base != nullptr) {
    fresh = PyContext_Copy(g_base);
    if (fresh == nullptr) return false;
  }
  // What greenlet does when a greenlet's gr_context is set while it runs: greenlet saves this
  // field with the greenlet at every switch. The version tells ContextVar caches it changed.
  PyThreadState* ts = PyThreadState_Get();
  Py_XSETREF(ts->context, fresh);
  ts->context_ver++;
  return true;
}

}  // namespace aiowsgi::worker::request_context
