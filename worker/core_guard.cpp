#include "worker/core_guard.h"

#include <algorithm>
#include <cstring>

namespace aiowsgi::worker {

NextStep next_step(bool aborted, ssize_t refs, ssize_t running_refs) noexcept {
  if (aborted) return NextStep::kRetire;
  return refs > running_refs ? NextStep::kViaLoop : NextStep::kHere;
}

void RequestText::set(std::string_view method, std::string_view target) noexcept {
  static constexpr std::string_view kEllipsis = "...";
  size_t n = std::min(method.size(), kCapacity / 4);
  std::memcpy(buf_, method.data(), n);
  buf_[n++] = ' ';
  size_t room = kCapacity - n;
  if (target.size() <= room) {
    std::memcpy(buf_ + n, target.data(), target.size());
    len_ = n + target.size();
    return;
  }
  size_t keep = room - kEllipsis.size();
  std::memcpy(buf_ + n, target.data(), keep);
  std::memcpy(buf_ + n + keep, kEllipsis.data(), kEllipsis.size());
  len_ = kCapacity;
}

}  // namespace aiowsgi::worker
