#include "worker/readiness_set.h"

#include <errno.h>

namespace aiowsgi::worker {

bool ReadinessSet::open() noexcept {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return false;
  ep_ = UniqueFd(ep);
  return true;
}

bool ReadinessSet::add(int fd) noexcept {
  // EPOLLRDHUP is not asked for: a half-closed client is noticed by recv() returning 0,
  // which is when the server can act on it (bytes before the FIN are still read).
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  return epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool ReadinessSet::remove(int fd) noexcept {
  epoll_event ev{};  // ignored by the kernel, but pre-2.6.9 ABI wants it non-null
  return epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, &ev) == 0;
}

int ReadinessSet::wait() noexcept {
  int n;
  do {
    n = epoll_wait(ep_.get(), events_, kBatch, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace aiowsgi::worker
