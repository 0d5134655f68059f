// The workers' side of [app] virtualenv (config/virtualenv.h checked the folder): the
// interpreter starts as the venv's own bin/python, so Python's getpath and site make
// sys.prefix, sys.executable and sys.path what that python would have, .pth files included;
// then the server's own packages are made importable without the rest of the system's.
// Worker and preload processes only; expose_server_packages needs the GIL.
#pragma once

#include <Python.h>

#include <string>

#include "config/config.h"

namespace aiowsgi::worker::virtualenv {

// Before Python starts (no GIL): VIRTUAL_ENV and PATH as the venv's `activate` sets them, so
// the app's subprocesses find the venv's console scripts and python.
void enter_environment(const std::string& venv);

// The program name the interpreter is configured with: the venv's bin/python, whose
// pyvenv.cfg Python's getpath reads.
std::string program_name(const std::string& venv);

// After Py_InitializeFromConfig, before anything imports greenlet: the finder for the
// server's packages (greenlet; uvloop with loop = "uvloop"), and greenlet imported and
// checked. False with a Python exception set (ImportError naming both greenlet versions).
bool expose_server_packages(const config::AppConfig& app) noexcept;

}  // namespace aiowsgi::worker::virtualenv
