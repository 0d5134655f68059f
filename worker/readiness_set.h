// ReadinessSet: one epoll set holding the worker's client connections, which the asyncio
// loop watches as a single reader. A loop turn then costs one Python callback for every
// ready connection together, instead of a loop handle, selector key and callback per
// connection (per-connection Python work was the largest user-space cost per request, and
// the loop's bookkeeping ~0.4 KB of memory per open connection).
// Workers only, on the loop's thread. No Python, no GIL needed.
#pragma once

#include <sys/epoll.h>

#include <cstddef>

#include "common/unique_fd.h"

namespace aiowsgi::worker {

class ReadinessSet {
 public:
  // Ready connections taken per wait(): the rest stay ready (level-triggered) and come in
  // the next loop turn, so other callbacks get their turn in between.
  static constexpr int kBatch = 128;

  ReadinessSet() = default;
  ReadinessSet(const ReadinessSet&) = delete;
  ReadinessSet& operator=(const ReadinessSet&) = delete;

  // Creates the epoll set. False with errno set.
  bool open() noexcept;
  // The epoll descriptor: readable while any watched connection is readable.
  int fd() const { return ep_.get(); }
  // Watches |fd| for input (level-triggered, also hang-up and error). False with errno set.
  bool add(int fd) noexcept;
  // Stops watching |fd|. Must come before |fd| is closed: a duplicate of the socket kept by
  // the app would otherwise keep the registration alive under a number reused later.
  bool remove(int fd) noexcept;
  // The descriptors ready now (without waiting), at most kBatch; their count, or -1.
  int wait() noexcept;
  int ready_fd(int i) const { return events_[i].data.fd; }

 private:
  UniqueFd ep_;
  epoll_event events_[kBatch];
};

}  // namespace aiowsgi::worker
