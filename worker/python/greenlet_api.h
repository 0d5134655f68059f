// Greenlet C API access for the worker, kept in one translation unit because greenlet.h keeps
// its API table in a per-file static (NOTES.md). Workers only; every call needs the GIL.
#pragma once

#include <Python.h>

namespace aiowsgi::worker::greenlet {

// Imports greenlet's C API. Returns false with a Python exception set on failure.
bool import_api() noexcept;

// A core's greenlet: a new greenlet running |run| whose parent is |parent|, of a greenlet
// subclass whose _aiowsgi_core slot holds |core_id| (how aiowsgi.core_id() and await_() recognise a
// core from inside the app).
PyObject* create_core(PyObject* run, PyObject* parent, PyObject* core_id) noexcept;

// That subclass (borrowed; nullptr before import_api()): the aiowsgi module shows it to apps
// as aiowsgi.CoreGreenlet.
PyObject* core_type() noexcept;

// The core id in |g|'s _aiowsgi_core slot (create_core's |core_id|); -1 for a greenlet that is
// not a core's.
long core_id_of(PyObject* g) noexcept;

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
