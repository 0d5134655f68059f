// Stack dumps: where a request's Python code is, for the log. A suspended core's stack is
// formatted by Python (traceback layout: file, line, function and source line, innermost
// last) when harakiri cancels it.
// Workers only; needs the GIL.
#pragma once

#include <Python.h>

#include <string>

namespace aiowsgi::worker::stack_dump {

// The stack greenlet |g| is suspended at, as traceback.format_stack() writes it, innermost
// frame last, with no trailing newline. "" when it has no frame (not started, finished, or
// the greenlet running now). Any Python exception pending on entry is kept, and none is left
// by the call itself: a failure is part of the returned text.
std::string suspended_stack(PyObject* g) noexcept;

}  // namespace aiowsgi::worker::stack_dump
