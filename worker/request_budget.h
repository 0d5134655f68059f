// RequestBudget: [limits] max_requests as a worker decides it, exactly. A request counts when
// its head is complete and the worker takes it on (a core or the queue), and the worker never
// takes on more than max_requests: each open connection that may still bring a request (a
// fresh one, or a keep-alive one between requests) holds a reservation, so the worker stops
// accepting, and answers with "Connection: close", once what it has handed plus what it has
// promised reaches the limit. Workers only; pure counting (no Python, no syscalls).
#pragma once

#include <cstdint>

namespace aiowsgi::worker {

class RequestBudget {
 public:
  explicit RequestBudget(uint64_t max_requests) : max_(max_requests) {}

  bool limited() const { return max_ > 0; }
  // Room for one more connection that may bring a request (accept one, or keep one alive).
  bool has_room() const { return max_ == 0 || admitted_ + reserved_ < max_; }
  // Takes one reservation; false (nothing taken) when there is no room.
  bool reserve() {
    if (!has_room()) return false;
    ++reserved_;
    return true;
  }
  // Gives back a reservation that will not be used (the connection closed, or errored).
  void release() {
    if (reserved_ > 0) --reserved_;
  }
  // A request is taken on. |reserved|: its connection held a reservation, which it uses;
  // without one it needs room. False: over the limit, do not hand it to the app.
  bool admit(bool reserved) {
    if (reserved) {
      release();
    } else if (!has_room()) {
      return false;
    }
    ++admitted_;
    return true;
  }
  // The last request was taken on: the worker retires.
  bool spent() const { return max_ > 0 && admitted_ >= max_; }
  uint64_t admitted() const { return admitted_; }
  uint64_t reserved() const { return reserved_; }

 private:
  uint64_t max_;
  uint64_t admitted_ = 0;
  uint64_t reserved_ = 0;
};

}  // namespace aiowsgi::worker
