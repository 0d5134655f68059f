#include "worker/accept_balance.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "common/stats_board.h"

namespace aiowsgi::worker {
namespace {

// One writer per field (the worker owning the slot): a relaxed load and store suffice.
inline void bump(std::atomic<uint64_t>& c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// Peers at most this many: one generation plus a reload's second one on a large machine.
constexpr size_t kMaxPeers = 256;

}  // namespace

size_t accept_allowance(uint64_t load, uint32_t capacity, const PeerLoad* peers, size_t count,
                        uint64_t margin) {
  constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();
  if (capacity == 0) return kUnlimited;
  bool any = false;
  uint64_t least = 0;  // the least loaded peer's connections, scaled to our capacity
  for (size_t i = 0; i < count; ++i) {
    if (peers[i].capacity == 0) continue;
    uint64_t scaled = peers[i].connections * capacity / peers[i].capacity;
    if (!any || scaled < least) least = scaled;
    any = true;
  }
  if (!any) return kUnlimited;
  uint64_t limit = least + margin + least / 8;
  return limit > load ? static_cast<size_t>(limit - load) : 0;
}

AcceptBalance::AcceptBalance(const StatsBoard* board, WorkerScore* self, uint32_t capacity)
    : board_(self != nullptr ? board : nullptr), self_(self), capacity_(capacity) {
  if (self_ != nullptr) self_->capacity.store(capacity, std::memory_order_relaxed);
}

size_t AcceptBalance::allowance(uint64_t load) const {
  if (board_ == nullptr) return std::numeric_limits<size_t>::max();
  PeerLoad peers[kMaxPeers];
  size_t n = 0;
  int slots = board_->slots_in_use();
  for (int i = 0; i < slots && n < kMaxPeers; ++i) {
    const WorkerScore* w = board_->worker(i);
    if (w == self_ || w->accepting.load(std::memory_order_acquire) == 0) continue;
    peers[n].connections = w->connections.load(std::memory_order_relaxed);
    peers[n].capacity = w->capacity.load(std::memory_order_relaxed);
    ++n;
  }
  return accept_allowance(load, capacity_, peers, n, kMargin);
}

uint64_t AcceptBalance::peers_accepted() const {
  if (board_ == nullptr) return 0;
  uint64_t sum = 0;
  int slots = board_->slots_in_use();
  for (int i = 0; i < slots; ++i) {
    const WorkerScore* w = board_->worker(i);
    if (w != self_) sum += w->accepted.load(std::memory_order_relaxed);
  }
  return sum;
}

void AcceptBalance::set_accepting(bool on) {
  if (self_ != nullptr) self_->accepting.store(on ? 1 : 0, std::memory_order_release);
}
void AcceptBalance::set_connections(uint64_t n) {
  if (self_ != nullptr) self_->connections.store(n, std::memory_order_relaxed);
}
void AcceptBalance::count_accepted() {
  if (self_ != nullptr) bump(self_->accepted);
}
void AcceptBalance::count_empty() {
  if (self_ != nullptr) bump(self_->accept_empty);
}
void AcceptBalance::count_deferral() {
  if (self_ != nullptr) bump(self_->deferrals);
}
uint64_t AcceptBalance::accepted() const {
  return self_ ? self_->accepted.load(std::memory_order_relaxed) : 0;
}
uint64_t AcceptBalance::empty() const {
  return self_ ? self_->accept_empty.load(std::memory_order_relaxed) : 0;
}
uint64_t AcceptBalance::deferrals() const {
  return self_ ? self_->deferrals.load(std::memory_order_relaxed) : 0;
}

}  // namespace aiowsgi::worker
