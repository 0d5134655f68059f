// ModuleFileReporter: with [app] reload, tells the master which source files this worker has
// loaded (common/watch_report.h), once after the app import (or its failure) and then every
// few seconds for modules imported lazily, sending only files not reported before. The
// scan is Python (aiowsgi_bootstrap.py _reload_new_files). Workers only; needs the GIL.
#pragma once

#include <Python.h>

#include <deque>
#include <string>

#include "worker/python/py_ref.h"
#include "worker/worker.h"

namespace aiowsgi::worker {

class ModuleFileReporter {
 public:
  static constexpr double kRescanSeconds = 2.0;

  // Does nothing at all unless [app] reload is on and there is a master to report to.
  explicit ModuleFileReporter(const WorkerContext& ctx);
  ~ModuleFileReporter();
  ModuleFileReporter(const ModuleFileReporter&) = delete;
  ModuleFileReporter& operator=(const ModuleFileReporter&) = delete;

  // Scans now and sends what is new. Keeps a pending Python exception as it was.
  void report() noexcept;
  // Rescans every kRescanSeconds on |loop| (loop.call_later) while the loop runs.
  void start(PyObject* loop) noexcept;

 private:
  static PyObject* tick_cb(PyObject*, PyObject*) noexcept;
  void schedule() noexcept;
  void flush() noexcept;

  bool enabled_ = false;
  int fd_ = -1;
  int worker_id_ = 0;
  std::string app_file_;             // always reported: the app is watched wherever it lives
  std::deque<std::string> pending_;  // payloads the socket had no room for yet
  PyRef loop_;
  PyRef tick_fn_;
};

}  // namespace aiowsgi::worker
