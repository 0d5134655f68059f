// PyRef: owns one strong reference to a Python object (RAII for PyObject*).
// Used in workers only. Construct, assign and destroy only with the GIL held.
// Rules of use: a new reference from the C API is taken with steal(); a borrowed one is kept
// with borrow() (which increfs); release() hands the reference back to the C API.
#pragma once

#include <Python.h>

#include <utility>

namespace aiowsgi::worker {

class PyRef {
 public:
  PyRef() = default;
  static PyRef steal(PyObject* p) noexcept { return PyRef(p); }
  static PyRef borrow(PyObject* p) noexcept {
    Py_XINCREF(p);
    return PyRef(p);
  }
  PyRef(PyRef&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  PyRef& operator=(PyRef&& o) noexcept {
    reset(std::exchange(o.p_, nullptr));
    return *this;
  }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  ~PyRef() { Py_XDECREF(p_); }

  PyObject* get() const noexcept { return p_; }
  PyObject* release() noexcept { return std::exchange(p_, nullptr); }
  // Stores first, decrefs after: the old object's __del__ may run code that sees us (Py_SETREF).
  void reset(PyObject* n = nullptr) noexcept { Py_XDECREF(std::exchange(p_, n)); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  explicit PyRef(PyObject* p) noexcept : p_(p) {}
  PyObject* p_ = nullptr;
};

}  // namespace aiowsgi::worker
