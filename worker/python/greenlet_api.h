// Greenlet C API access for the worker, kept in one translation unit because greenlet.h keeps
// its API table in a per-file static (NOTES.md). Workers only; every call needs the GIL.
#pragma once

#include <Python.h>

namespace aiowsgi::worker::greenlet {

// Imports greenlet's C API. Returns false with a Python exception set on failure.
bool import_api() noexcept;

// A new greenlet running |run| whose parent is |parent|. New reference, or nullptr + exception.
PyObject* create(PyObject* run, PyObject* parent) noexcept;

// The current greenlet (new reference).
PyObject* current() noexcept;

// g.switch(): new reference to what the switch returned, or nullptr with an exception set
// (for example GreenletExit thrown into a core being killed).
PyObject* switch_to(PyObject* g) noexcept;

// g.throw(GreenletExit): kills a suspended greenlet. Returns what switch_to would.
PyObject* kill(PyObject* g) noexcept;

// True if the pending exception is GreenletExit.
bool exception_is_exit() noexcept;

// True if g has started and not finished.
bool active(PyObject* g) noexcept;

}  // namespace aiowsgi::worker::greenlet
