// AcceptBalance: spreads new connections over the workers that share the listen sockets.
// Each worker publishes its open connections and whether it takes new ones in its StatsBoard
// slot; before accepting, a worker reads its peers' slots and takes only as many
// connections as keeps its share of load within a margin of the least loaded peer. Worker
// processes; plain shared-memory reads and stores, no syscall, no GIL use.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aiowsgi {
class StatsBoard;
struct WorkerScore;
}  // namespace aiowsgi

namespace aiowsgi::worker {

struct PeerLoad {
  uint64_t connections = 0;
  uint32_t capacity = 0;  // cores
};

// How many more connections a worker holding |load| connections for |capacity| cores may
// accept before its share passes the least loaded peer's share by |margin| connections plus
// an eighth of that peer's load (a relative slack: at high loads a few connections of
// difference are not worth a wake-up). SIZE_MAX when no peer counts (none given, or none
// with a capacity).
size_t accept_allowance(uint64_t load, uint32_t capacity, const PeerLoad* peers, size_t count,
                        uint64_t margin);

class AcceptBalance {
 public:
  // Connections a worker may be ahead of its least loaded peer before it leaves new ones to
  // it (plus the relative slack): small, so a burst ends nearly even; above 1, so equal
  // loads do not flip-flop.
  static constexpr uint64_t kMargin = 2;

  // |board| is the region holding |self| (both null: a lone worker, nothing to balance).
  AcceptBalance(const StatsBoard* board, WorkerScore* self, uint32_t capacity);

  // The accept_allowance() of this worker against the peers taking connections now.
  size_t allowance(uint64_t load) const;
  // The sum of the peers' accepted counters: if it has not moved during a deferral, no peer
  // took the connections left to it (its loop may be held by a long request).
  uint64_t peers_accepted() const;

  // Published for the peers: the worker takes new connections (watches the listen sockets,
  // or stands aside for a moment).
  void set_accepting(bool on);
  void set_connections(uint64_t n);
  void count_accepted();
  void count_empty();
  void count_deferral();

  uint64_t accepted() const;
  uint64_t empty() const;
  uint64_t deferrals() const;

 private:
  const StatsBoard* board_;
  WorkerScore* self_;
  uint32_t capacity_;
};

}  // namespace aiowsgi::worker
