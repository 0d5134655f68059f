// StatsBoard: the shared-memory record of what every worker process and core has done, in the
// manner of uWSGI's scoreboard. The master maps one MAP_SHARED region before forking and gives
// each worker process a slot; workers store plain counters into it on the request path (no
// syscall, no lock, one writer per field) and the master reads them whenever it builds a stats
// document or /metrics, so the figures are there even while every worker is busy.
// Master and workers; no Python.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "common/status.h"

namespace aiowsgi {

// Upper bounds (seconds) of the request-duration histogram buckets; one more bucket is +Inf.
inline constexpr double kDurationBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,      2.5,   5,    10,    30,   60};
inline constexpr size_t kBucketCount = sizeof(kDurationBuckets) / sizeof(double) + 1;
// Cores past this many per worker share one aggregate record: their requests count in the
// worker's figures but are not listed one by one (keeps the region bounded for cores=100000).
inline constexpr int kMaxCoreDetail = 1024;
// Bytes of "METHOD target" kept per core while a request runs (stats document, display only).
inline constexpr size_t kRequestTextBytes = 72;

// One core. Written only by its worker's single thread; read by the master at any time (a
// torn request_text is possible and harmless: it is display only).
struct alignas(64) CoreScore {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> in_request{0};  // 0/1 (a count in the aggregate record)
  std::atomic<uint64_t> write_errors{0};
  std::atomic<uint64_t> read_errors{0};
  std::atomic<uint64_t> start_ns{0};     // CLOCK_MONOTONIC of the current request's start
  std::atomic<uint64_t> tx_at_start{0};  // the worker's tx when the current request began
  std::atomic<uint32_t> request_text_len{0};
  char request_text[kRequestTextBytes] = {};
};
static_assert(sizeof(CoreScore) == 128);

// Response status classes: index 1..5 = 1xx..5xx; 0 = no status was sent (the client went
// away first, or the request was cancelled).
inline constexpr size_t kStatusClasses = 6;

// One worker process. |core_detail| CoreScore records, then one aggregate record, follow it
// in memory.
struct alignas(64) WorkerScore {
  // Set by the master before fork for the worker's own use. The worker can write anything
  // here: the master never reads it back, it passes its own StatsBoard::core_detail().
  uint32_t core_detail = 0;
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> exceptions{0};
  std::atomic<uint64_t> harakiri_count{0};
  std::atomic<uint64_t> tx{0};               // response bytes sent
  std::atomic<uint64_t> running_time_us{0};  // sum of request durations
  std::atomic<uint64_t> avg_rt_us{0};        // moving average (1/8 weight) of durations
  std::atomic<uint64_t> in_flight{0};        // cores in a request right now
  std::atomic<uint64_t> status_class[kStatusClasses] = {};
  std::atomic<uint64_t> duration_bucket[kBucketCount] = {};  // not cumulative
  // The core the loop switched into, -1 when none. A request that blocks the loop cannot
  // tell the master anything; this marker lets its harakiri log name the request (view()).
  std::atomic<int32_t> running_core{-1};
  // Accept balancing (worker/accept_balance.h): what peers sharing the listen sockets read
  // to decide who takes the next connection. The master clears |accepting| when it reaps.
  std::atomic<uint32_t> accepting{0};     // 1 while the worker takes new connections
  std::atomic<uint32_t> capacity{0};      // cores: connections are compared as a share of it
  std::atomic<uint64_t> connections{0};   // client connections open now
  std::atomic<uint64_t> accepted{0};      // connections accepted since the worker started
  std::atomic<uint64_t> accept_empty{0};  // accept calls that found the queue empty
  std::atomic<uint64_t> deferrals{0};     // wake-ups left to a less loaded peer

  CoreScore* cores() { return reinterpret_cast<CoreScore*>(this + 1); }
  const CoreScore* cores() const { return reinterpret_cast<const CoreScore*>(this + 1); }
  // The record core |id| writes: its own, or the aggregate one at index core_detail.
  CoreScore* core(int id) {
    auto i = static_cast<uint32_t>(id);
    return cores() + (i < core_detail ? i : core_detail);
  }
};

// Monotonic nanoseconds (vDSO: no syscall).
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// --- Worker side: a core calls these around each request; |w| may be null (no slot) -------

// A request starts on core |core_id|. |tx| is the worker's response-byte total now.
void score_request_begin(WorkerScore* w, int core_id, std::string_view method,
                         std::string_view target, uint64_t tx) noexcept;

// What one finished request measured (for the access log).
struct RequestFigures {
  uint64_t duration_us = 0;
  uint64_t bytes = 0;
};

// The request on core |core_id| ended with HTTP |status| (0: none sent). |tx|, |exceptions|
// and |harakiri| are the worker's running totals, mirrored into the slot. Zero figures for a
// null |w|.
RequestFigures score_request_end(WorkerScore* w, int core_id, int status, uint64_t tx,
                                 uint64_t exceptions, uint64_t harakiri) noexcept;

// A request answered without a core (a static file) ended with HTTP |status| after
// |duration_us|; |tx| is the worker's response-byte total now. Counted like any request.
void score_request_coreless(WorkerScore* w, int status, uint64_t duration_us, uint64_t tx) noexcept;

inline void score_write_error(WorkerScore* w, int core_id) noexcept {
  if (w == nullptr) return;
  auto& c = w->core(core_id)->write_errors;
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
inline void score_read_error(WorkerScore* w, int core_id) noexcept {
  if (w == nullptr) return;
  auto& c = w->core(core_id)->read_errors;
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The loop switches into core |core_id| (before the greenlet switch) or is back from it
// (|core_id| -1, after the switch).
inline void score_running_core(WorkerScore* w, int core_id) noexcept {
  if (w != nullptr) w->running_core.store(core_id, std::memory_order_release);
}

// The histogram bucket of a duration in microseconds (kBucketCount - 1 is +Inf).
size_t duration_bucket(uint64_t duration_us);

// --- Master side ----------------------------------------------------------------------------

// Counters of one slot (summed over its cores where they are per core), or a sum of slots.
struct ScoreTotals {
  uint64_t requests = 0, exceptions = 0, harakiri = 0, tx = 0, running_time_us = 0;
  uint64_t in_flight = 0, write_errors = 0, read_errors = 0;
  uint64_t status_class[kStatusClasses] = {};
  uint64_t duration_bucket[kBucketCount] = {};
  void add(const ScoreTotals& o);
};

// What the master learns about one worker's in-flight requests (harakiri).
struct ScoreView {
  uint64_t in_flight = 0;        // cores in a request, aggregated ones included
  uint64_t oldest_ns = 0;        // monotonic_ns() start of the oldest detailed one, 0 when none
  uint64_t suspect_ns = 0;       // start of the request most likely holding the loop, 0 unknown
  int suspect_core = -1;         // its core, -1 when none
  std::string suspect;           // its "METHOD target"; empty past kMaxCoreDetail cores
  bool suspect_running = false;  // the loop had switched into that core (not a guess)
};

// The suspect is the core the loop switched into when it is in a request, else the newest
// in-flight request (a request that blocks usually does so before its first suspension).
// The master's reader: |core_detail| is the board's (StatsBoard::core_detail()), never the
// slot's own field, and every index or length read from the slot is checked against it, so
// a worker that scribbles over its slot cannot make the master read outside it.
ScoreView view(const WorkerScore& w, uint32_t core_detail);

// The region. Move-only; unmapped on destruction. The master creates it; forked workers
// inherit the mapping and touch only the WorkerScore they are given.
class StatsBoard {
 public:
  StatsBoard() = default;
  ~StatsBoard();
  StatsBoard(StatsBoard&& o) noexcept;
  StatsBoard& operator=(StatsBoard&& o) noexcept;
  StatsBoard(const StatsBoard&) = delete;
  StatsBoard& operator=(const StatsBoard&) = delete;

  // Maps a zeroed region for |slots| worker processes of |cores| cores each (detail capped at
  // kMaxCoreDetail). An Io status when mmap fails.
  static Status create(int slots, int cores, StatsBoard* out);

  // Slots the master maps for |workers|: room for a reload (two generations side by side)
  // and for SIGTTIN growth.
  static int slots_for(int workers) { return workers * 2 + 16 > 64 ? workers * 2 + 16 : 64; }

  // Takes a free slot, zeroed, for a process about to be forked; -1 when all are taken.
  int claim();
  // Gives slot |index| back after its process was reaped; its totals move to retired().
  // Ignores -1.
  void release(int index);

  WorkerScore* worker(int index);
  const WorkerScore* worker(int index) const;
  int slots() const { return slots_; }
  // Detailed core records per slot, as the master mapped them: the bound for every read.
  uint32_t core_detail() const { return static_cast<uint32_t>(core_detail_); }
  // One past the highest slot ever claimed, read from the shared region: a worker scanning
  // its peers looks no further.
  int slots_in_use() const;
  size_t bytes() const { return bytes_; }

  // The counters of one slot, read now; |core_detail| as for view().
  static ScoreTotals totals(const WorkerScore& w, uint32_t core_detail);
  // What processes that held released slots had counted: Prometheus counters must not go
  // backwards when a worker is replaced.
  const ScoreTotals& retired() const { return retired_; }

 private:
  void unmap();

  char* base_ = nullptr;
  size_t bytes_ = 0;
  size_t stride_ = 0;
  int slots_ = 0;
  int core_detail_ = 0;
  bool* used_ = nullptr;  // master-private: claimed slots
  ScoreTotals retired_;
};

}  // namespace aiowsgi
