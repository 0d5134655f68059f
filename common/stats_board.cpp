#include "common/stats_board.h"

#include <errno.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace aiowsgi {
namespace {

// Single writer: a relaxed load and store is enough (and cheaper than a locked add).
inline void bump(std::atomic<uint64_t>& c, uint64_t by = 1) {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
inline uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

// Shared region header: written by the master only.
struct alignas(64) BoardHeader {
  std::atomic<int32_t> slots_in_use{0};
};

}  // namespace

size_t duration_bucket(uint64_t duration_us) {
  double s = static_cast<double>(duration_us) / 1e6;
  for (size_t i = 0; i + 1 < kBucketCount; ++i) {
    if (s <= kDurationBuckets[i]) return i;
  }
  return kBucketCount - 1;
}

void score_request_begin(WorkerScore* w, int core_id, std::string_view method,
                         std::string_view target, uint64_t tx) noexcept {
  if (w == nullptr) return;
  CoreScore* c = w->core(core_id);
  c->tx_at_start.store(tx, std::memory_order_relaxed);
  c->start_ns.store(monotonic_ns(), std::memory_order_relaxed);
  if (static_cast<uint32_t>(core_id) < w->core_detail) {
    size_t n = std::min(method.size(), kRequestTextBytes - 1);
    std::memcpy(c->request_text, method.data(), n);
    c->request_text[n++] = ' ';
    size_t m = std::min(target.size(), kRequestTextBytes - n);
    std::memcpy(c->request_text + n, target.data(), m);
    c->request_text_len.store(static_cast<uint32_t>(n + m), std::memory_order_release);
    c->in_request.store(1, std::memory_order_release);
  } else {
    bump(c->in_request);
  }
  bump(w->in_flight);
}

RequestFigures score_request_end(WorkerScore* w, int core_id, int status, uint64_t tx,
                                 uint64_t exceptions, uint64_t harakiri) noexcept {
  RequestFigures f;
  if (w == nullptr) return f;
  CoreScore* c = w->core(core_id);
  uint64_t now = monotonic_ns();
  uint64_t start = get(c->start_ns);
  f.duration_us = now > start ? (now - start) / 1000 : 0;
  uint64_t tx0 = get(c->tx_at_start);
  f.bytes = tx > tx0 ? tx - tx0 : 0;
  bump(c->requests);
  if (static_cast<uint32_t>(core_id) < w->core_detail) {
    c->in_request.store(0, std::memory_order_release);
  } else if (get(c->in_request) > 0) {
    c->in_request.store(get(c->in_request) - 1, std::memory_order_relaxed);
  }
  if (get(w->in_flight) > 0) w->in_flight.store(get(w->in_flight) - 1, std::memory_order_relaxed);
  bump(w->requests);
  size_t cls = status >= 100 && status < 600 ? static_cast<size_t>(status / 100) : 0;
  bump(w->status_class[cls]);
  bump(w->duration_bucket[duration_bucket(f.duration_us)]);
  bump(w->running_time_us, f.duration_us);
  uint64_t avg = get(w->avg_rt_us);
  // uWSGI's avg_rt follows recent requests; a 1/8 moving average does the same smoothly.
  w->avg_rt_us.store(avg == 0 ? f.duration_us : avg - avg / 8 + f.duration_us / 8,
                     std::memory_order_relaxed);
  w->tx.store(tx, std::memory_order_relaxed);
  w->exceptions.store(exceptions, std::memory_order_relaxed);
  w->harakiri_count.store(harakiri, std::memory_order_relaxed);
  return f;
}

void score_request_coreless(WorkerScore* w, int status, uint64_t duration_us,
                            uint64_t tx) noexcept {
  if (w == nullptr) return;
  bump(w->requests);
  size_t cls = status >= 100 && status < 600 ? static_cast<size_t>(status / 100) : 0;
  bump(w->status_class[cls]);
  bump(w->duration_bucket[duration_bucket(duration_us)]);
  bump(w->running_time_us, duration_us);
  uint64_t avg = get(w->avg_rt_us);
  w->avg_rt_us.store(avg == 0 ? duration_us : avg - avg / 8 + duration_us / 8,
                     std::memory_order_relaxed);
  w->tx.store(tx, std::memory_order_relaxed);
}

ScoreView view(const WorkerScore& w, uint32_t core_detail) {
  ScoreView v;
  v.in_flight = get(w.in_flight);
  // Each shared value is loaded once into a local and checked before it is used: the worker
  // may change it between two loads.
  int32_t running = w.running_core.load(std::memory_order_acquire);
  int newest = -1;
  uint64_t newest_ns = 0;
  for (uint32_t i = 0; i < core_detail; ++i) {
    const CoreScore& c = w.cores()[i];
    if (c.in_request.load(std::memory_order_acquire) == 0) continue;
    uint64_t t = get(c.start_ns);
    if (v.oldest_ns == 0 || t < v.oldest_ns) v.oldest_ns = t;
    if (newest < 0 || t >= newest_ns) {
      newest_ns = t;
      newest = static_cast<int>(i);
    }
  }
  if (running >= 0 && static_cast<uint32_t>(running) >= core_detail) {
    // Past the detailed cores: the core is known, its request is not.
    if (get(w.cores()[core_detail].in_request) > 0) {
      v.suspect_core = running;
      v.suspect_running = true;
      return v;
    }
  } else if (running >= 0 && w.cores()[running].in_request.load(std::memory_order_acquire) != 0) {
    newest = running;
    v.suspect_running = true;
  }
  if (newest < 0) return v;
  const CoreScore& c = w.cores()[newest];
  v.suspect_core = newest;
  v.suspect_ns = get(c.start_ns);
  size_t n =
      std::min<size_t>(c.request_text_len.load(std::memory_order_acquire), kRequestTextBytes);
  v.suspect.assign(c.request_text, n);
  return v;
}

void ScoreTotals::add(const ScoreTotals& o) {
  requests += o.requests;
  exceptions += o.exceptions;
  harakiri += o.harakiri;
  tx += o.tx;
  running_time_us += o.running_time_us;
  in_flight += o.in_flight;
  write_errors += o.write_errors;
  read_errors += o.read_errors;
  for (size_t i = 0; i < kStatusClasses; ++i) status_class[i] += o.status_class[i];
  for (size_t i = 0; i < kBucketCount; ++i) duration_bucket[i] += o.duration_bucket[i];
}

StatsBoard::~StatsBoard() { unmap(); }

StatsBoard::StatsBoard(StatsBoard&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)),
      stride_(o.stride_),
      slots_(std::exchange(o.slots_, 0)),
      core_detail_(o.core_detail_),
      used_(std::exchange(o.used_, nullptr)),
      retired_(o.retired_) {}

StatsBoard& StatsBoard::operator=(StatsBoard&& o) noexcept {
  if (this != &o) {
    unmap();
    base_ = std::exchange(o.base_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    stride_ = o.stride_;
    slots_ = std::exchange(o.slots_, 0);
    core_detail_ = o.core_detail_;
    used_ = std::exchange(o.used_, nullptr);
    retired_ = o.retired_;
  }
  return *this;
}

void StatsBoard::unmap() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
  delete[] used_;
  base_ = nullptr;
  used_ = nullptr;
  bytes_ = 0;
  slots_ = 0;
}

Status StatsBoard::create(int slots, int cores, StatsBoard* out) {
  StatsBoard b;
  b.slots_ = std::max(1, slots);
  b.core_detail_ = std::clamp(cores, 1, kMaxCoreDetail);
  // The slot header, its detailed cores and one aggregate core record.
  b.stride_ = sizeof(WorkerScore) + sizeof(CoreScore) * static_cast<size_t>(b.core_detail_ + 1);
  b.bytes_ = sizeof(BoardHeader) + b.stride_ * static_cast<size_t>(b.slots_);
  // MAP_NORESERVE: only the pages workers actually touch take memory.
  void* p = ::mmap(nullptr, b.bytes_, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    b.bytes_ = 0;
    return Status::Io("cannot map the stats board", errno);
  }
  new (p) BoardHeader();
  b.base_ = static_cast<char*>(p);
  b.used_ = new bool[static_cast<size_t>(b.slots_)]();
  for (int i = 0; i < b.slots_; ++i) {
    auto* w = b.worker(i);
    new (w) WorkerScore();
    w->core_detail = static_cast<uint32_t>(b.core_detail_);
    for (int c = 0; c <= b.core_detail_; ++c) new (w->cores() + c) CoreScore();
  }
  *out = std::move(b);
  return Status::Ok();
}

int StatsBoard::claim() {
  for (int i = 0; i < slots_; ++i) {
    if (used_[i]) continue;
    used_[i] = true;
    // The previous holder was reaped: nobody writes here any more.
    auto* w = new (worker(i)) WorkerScore();
    auto& high = reinterpret_cast<BoardHeader*>(base_)->slots_in_use;
    if (high.load(std::memory_order_relaxed) <= i) high.store(i + 1, std::memory_order_release);
    w->core_detail = static_cast<uint32_t>(core_detail_);
    for (int c = 0; c <= core_detail_; ++c) new (w->cores() + c) CoreScore();
    return i;
  }
  return -1;
}

void StatsBoard::release(int index) {
  if (index < 0 || index >= slots_ || !used_[index]) return;
  ScoreTotals t = totals(*worker(index), core_detail());
  t.in_flight = 0;  // requests cut short by the exit are not running any more
  retired_.add(t);
  // A worker that died without saying so must not look like a peer taking connections.
  worker(index)->accepting.store(0, std::memory_order_release);
  used_[index] = false;
}

WorkerScore* StatsBoard::worker(int index) {
  if (index < 0 || index >= slots_) return nullptr;
  return reinterpret_cast<WorkerScore*>(base_ + sizeof(BoardHeader) +
                                        stride_ * static_cast<size_t>(index));
}

const WorkerScore* StatsBoard::worker(int index) const {
  if (index < 0 || index >= slots_) return nullptr;
  return reinterpret_cast<const WorkerScore*>(base_ + sizeof(BoardHeader) +
                                              stride_ * static_cast<size_t>(index));
}

int StatsBoard::slots_in_use() const {
  if (base_ == nullptr) return 0;
  return reinterpret_cast<const BoardHeader*>(base_)->slots_in_use.load(std::memory_order_acquire);
}

ScoreTotals StatsBoard::totals(const WorkerScore& w, uint32_t core_detail) {
  ScoreTotals t;
  t.requests = get(w.requests);
  t.exceptions = get(w.exceptions);
  t.harakiri = get(w.harakiri_count);
  t.tx = get(w.tx);
  t.running_time_us = get(w.running_time_us);
  t.in_flight = get(w.in_flight);
  for (uint32_t c = 0; c <= core_detail; ++c) {
    t.write_errors += get(w.cores()[c].write_errors);
    t.read_errors += get(w.cores()[c].read_errors);
  }
  for (size_t i = 0; i < kStatusClasses; ++i) t.status_class[i] = get(w.status_class[i]);
  for (size_t i = 0; i < kBucketCount; ++i) t.duration_bucket[i] = get(w.duration_bucket[i]);
  return t;
}

}  // namespace aiowsgi
