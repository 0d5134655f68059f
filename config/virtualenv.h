// A virtualenv as the master sees it ([app] virtualenv, or $VIRTUAL_ENV): its pyvenv.cfg read
// and checked against the Python the workers embed and the greenlet the server was built
// against, so a wrong venv is a config error (--check, start, HUP) naming the path and both
// versions, never an import traceback in every worker. Master only; no Python.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "common/status.h"

namespace aiowsgi::config {

// The Python version the workers embed ("3.11.2") and its interpreter ("/usr/bin/python3.11"),
// from the build.
std::string_view embedded_python_version();
std::string_view embedded_python_executable();
// The greenlet version the server was built against ("2.0.2"); the workers use its C API.
std::string_view built_greenlet_version();

// What pyvenv.cfg says ("key = value" lines, as Python's getpath and site read them).
struct PyvenvCfg {
  std::string home;     // the base interpreter's folder
  std::string version;  // "3.11.2" (`version`, or virtualenv's `version_info`)
  bool include_system_site_packages = false;
};

// Parses pyvenv.cfg. Fails on a line that is not "key = value" (naming its number), on a
// missing home or version, or on an include-system-site-packages other than true/false.
Result<PyvenvCfg> parse_pyvenv_cfg(std::string_view text);

// Whether |dir| (absolute) is a venv the workers can run: a folder with a readable, valid
// pyvenv.cfg made by the embedded Python's major.minor version, a bin/python, and no greenlet
// of another version than the server's in its site-packages. The reason otherwise, naming
// the path and both versions.
Status check_virtualenv(const std::string& dir);

}  // namespace aiowsgi::config
