// Runs the Python half of a built-in module (worker/python/*.py, embedded at build time by
// cmake/embed_python.cmake) under the file's own name, so tracebacks name it and show its
// lines. Workers only; needs the GIL.
#pragma once

#include <Python.h>

namespace aiowsgi::worker {

// Compiles |source| as file |file_name| and runs it with |dict| as globals and locals (like
// PyRun_String, which cannot name the file). Its lines go to linecache first, so a traceback
// through this code shows them although no such file exists on disk. False with a Python
// exception set on failure.
bool run_embedded_python(const char* file_name, const char* source, PyObject* dict) noexcept;

}  // namespace aiowsgi::worker
