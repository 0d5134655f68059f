// Stack dumps: where a request's Python code is, for the log. A suspended core's stack is
// formatted by Python (traceback layout: file, line, function and source line, innermost
// last) when harakiri cancels it or on SIGUSR2; the code that holds the loop, which Python
// cannot reach then, is written from inside the signal handler by faulthandler.
// Workers only; the calls below need the GIL (the installed handler does not).
#pragma once

#include <Python.h>

#include <string>

namespace aiowsgi::worker::stack_dump {

// The stack greenlet |g| is suspended at, as traceback.format_stack() writes it, innermost
// frame last, with no trailing newline. "" when it has no frame (not started, finished, or
// the greenlet running now). Any Python exception pending on entry is kept, and none is left
// by the call itself: a failure is part of the returned text.
std::string suspended_stack(PyObject* g) noexcept;

// faulthandler.register(signo, file=fd, all_threads=False, chain=True): from then on
// |signo| makes its handler write the Python stack of the thread it interrupts to |fd|
// (async-signal-safe writes, innermost frame first, file, line and function without the
// source line), then run the handler that was installed before (so the loop's own
// add_signal_handler still hears the signal). Install it after that handler. The kernel
// gives a process-directed signal to the main thread, the loop's, unless that blocks it.
// False with a Python exception set.
bool install_fault_dump(int signo, int fd) noexcept;

}  // namespace aiowsgi::worker::stack_dump
