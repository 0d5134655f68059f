// BodyDeadline: see body_deadline.h.

#include "worker/protocol/body_deadline.h"

#include <limits>

namespace aiowsgi::worker {

double BodyDeadline::remaining(double timeout, uint64_t received) const {
  if (timeout <= 0) return std::numeric_limits<double>::infinity();
  return timeout + static_cast<double>(received) / kMinBytesPerSecond - waited_;
}

}  // namespace aiowsgi::worker
