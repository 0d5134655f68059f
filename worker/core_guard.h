// Core guard: the decisions that keep what one request leaves behind (a wake-up of its
// greenlet still pending, a reference the app kept) away from the next request on the same
// core. Workers only; plain C++, no Python calls, no GIL needed.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string_view>

namespace aiowsgi::worker {

// References to a parked core greenlet that the server accounts for: the core's own. More
// means something else (a pending call_later(t, me.switch), a list the app keeps) may switch
// into it later.
constexpr ssize_t kParkedGreenletRefs = 1;

// Retired greenlets a worker keeps alive so that a stale wake-up still finds them and is
// logged; past this many the oldest is ended (its wake-up then goes nowhere silently).
constexpr size_t kMaxRetiredGreenlets = 64;

// What a core's greenlet does once a request is over and another one (pipelined on the same
// connection, or queued) could be served right away.
enum class NextStep {
  kHere,     // nothing but the server refers to the greenlet: serve it in this greenlet
  kViaLoop,  // something else refers to it, maybe only the loop callback that resumed it and
             // is still on the loop's stack: let the loop run, then look again from there
  kRetire,   // the request was aborted while suspended: this greenlet serves no more requests
};

// |aborted|: the last request was cancelled while suspended (harakiri, a client that went away
// during aiowsgi.await_). |refs|: the greenlet's reference count now, from inside it;
// |running_refs|: the count it had when it started, before any app code ran.
NextStep next_step(bool aborted, ssize_t refs, ssize_t running_refs) noexcept;

// A parked greenlet may serve the next request when nothing but its core refers to it.
inline bool parked_greenlet_reusable(ssize_t refs) noexcept { return refs <= kParkedGreenletRefs; }

// "METHOD target" of a core's last request, truncated to a fixed size: kept for every request
// without allocating, so that a warning about a stale wake-up can name the request that left it.
class RequestText {
 public:
  void set(std::string_view method, std::string_view target) noexcept;
  std::string_view view() const noexcept { return {buf_, len_}; }

  static constexpr size_t kCapacity = 120;

 private:
  char buf_[kCapacity] = {};
  size_t len_ = 0;
};

}  // namespace aiowsgi::worker
