#include "worker/python/virtualenv.h"

#include <stdlib.h>

#include "config/virtualenv.h"
#include "worker/python/embedded_python.h"
#include "worker/python/py_ref.h"
#include "worker/python/server_packages_py.h"  // generated from server_packages.py

namespace aiowsgi::worker::virtualenv {

void enter_environment(const std::string& venv) {
  // Runs in the child before Python starts: one thread, so setenv is safe.
  setenv("VIRTUAL_ENV", venv.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  const char* path = getenv("PATH");       // NOLINT(concurrency-mt-unsafe)
  std::string bin = venv + "/bin";
  if (path != nullptr && *path != '\0') bin.append(":").append(path);
  setenv("PATH", bin.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  // A PYTHONHOME inherited from the master would win over pyvenv.cfg's home.
  unsetenv("PYTHONHOME");  // NOLINT(concurrency-mt-unsafe)
}

std::string program_name(const std::string& venv) { return venv + "/bin/python"; }

bool expose_server_packages(const config::AppConfig& app) noexcept {
  PyRef dict = PyRef::steal(PyDict_New());
  if (!dict) return false;
  if (!run_embedded_python(embedded::kServerPackagesFile, embedded::kServerPackagesSource,
                           dict.get()))
    return false;
  PyRef names = app.loop == "uvloop" ? PyRef::steal(Py_BuildValue("(ss)", "greenlet", "uvloop"))
                                     : PyRef::steal(Py_BuildValue("(s)", "greenlet"));
  PyObject* install = PyDict_GetItemString(dict.get(), "_install");  // borrowed
  if (!names || install == nullptr) return false;
  std::string built(config::built_greenlet_version());
  PyRef r = PyRef::steal(PyObject_CallFunction(install, "Os", names.get(), built.c_str()));
  return static_cast<bool>(r);
}

}  // namespace aiowsgi::worker::virtualenv
