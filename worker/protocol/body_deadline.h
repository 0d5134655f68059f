// BodyDeadline: how long a core may keep waiting for the rest of a request body, so that a
// client dripping a byte now and then cannot hold a core forever ([limits] body_timeout).
// One per core, reset per request; pure arithmetic over times the caller measures (no clock,
// no Python).
#pragma once

#include <cstdint>

namespace aiowsgi::worker {

// The rule (in the spirit of Apache's mod_reqtimeout "body=...,MinRate=..."): the time the
// server spends waiting for body bytes may not pass body_timeout seconds plus one second per
// kMinBytesPerSecond bytes received so far. Only waiting counts: while the app is busy
// elsewhere the client is not to blame. A steady upload of any realistic speed never meets
// the limit; a drip of a few bytes a second meets it about body_timeout seconds in.
class BodyDeadline {
 public:
  static constexpr double kMinBytesPerSecond = 1024;

  void reset() { waited_ = 0; }
  // Seconds the core may still wait, given the request's |received| body bytes so far and
  // body_timeout |timeout| (0: no overall limit, the result is +infinity). <= 0: time is up.
  double remaining(double timeout, uint64_t received) const;
  // Records |seconds| spent waiting for body bytes.
  void add_wait(double seconds) { waited_ += seconds > 0 ? seconds : 0; }
  double waited() const { return waited_; }

 private:
  double waited_ = 0;
};

}  // namespace aiowsgi::worker
