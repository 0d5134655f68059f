// guarded(): runs a callback body that C code (libev) calls, so that no C++ exception unwinds
// through C frames: an exception is logged as an internal error and swallowed.
// Master and workers; no Python.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>

namespace aiowsgi {

template <typename F>
void guarded(const char* where, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::critical("internal error in {}: {}", where, e.what());
  } catch (...) {
    spdlog::critical("internal error in {}: unknown exception", where);
  }
}

}  // namespace aiowsgi
