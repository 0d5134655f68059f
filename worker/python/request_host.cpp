#include "worker/python/request_host.h"

#include <vector>

#include "worker/python/greenlet_api.h"
#include "worker/python/py_ref.h"

namespace aiowsgi::worker {

namespace {

// Grows to the number of cores once, at worker start; the worker's only thread.
std::vector<RequestHost*>& hosts() {
  static std::vector<RequestHost*>* h = new std::vector<RequestHost*>;  // never destroyed
  return *h;
}

}  // namespace

void register_host(int id, RequestHost* host) noexcept {
  if (id < 0) return;
  auto& h = hosts();
  try {
    if (h.size() <= static_cast<size_t>(id)) h.resize(static_cast<size_t>(id) + 1, nullptr);
  } catch (...) {  // std::bad_alloc at worker start: the core is then never found as current
    return;
  }
  h[static_cast<size_t>(id)] = host;
}

void unregister_host(int id) noexcept {
  auto& h = hosts();
  if (id >= 0 && static_cast<size_t>(id) < h.size()) h[static_cast<size_t>(id)] = nullptr;
}

RequestHost* host_by_id(int id) noexcept {
  auto& h = hosts();
  return id >= 0 && static_cast<size_t>(id) < h.size() ? h[static_cast<size_t>(id)] : nullptr;
}

RequestHost* current_host() noexcept {
  // A core's greenlet carries its id (CoreGreenlet._aiowsgi_core); other greenlets have none.
  PyRef g = PyRef::steal(greenlet::current());
  if (!g) {
    PyErr_Clear();
    return nullptr;
  }
  long n = greenlet::core_id_of(g.get());
  if (n < 0) return nullptr;
  RequestHost* host = host_by_id(static_cast<int>(n));
  if (host == nullptr || !host->has_connection() || !host->on_own_greenlet()) return nullptr;
  return host;
}

}  // namespace aiowsgi::worker
