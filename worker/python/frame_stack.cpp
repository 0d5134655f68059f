#include "worker/python/frame_stack.h"

#include <Python.h>
#include <sys/mman.h>

#include <cstdint>
#include <new>
#include <vector>

namespace aiowsgi::worker::frame_stack {

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define AIOWSGI_SMALL_FRAME_STACKS 1
#endif

namespace {

// Room for the app's function and a few small callees (a frame is ~10 words plus its locals
// and value stack). The first word is never used: see adopt().
constexpr size_t kChunkBytes = 1024;
// CPython's own chunks are 16 KiB times a power of two; obmalloc's arenas are far larger.
constexpr size_t kDataStackChunk = 16 * 1024;
constexpr size_t kLargestChunkWatched = 128 * 1024;
// Freed 16 KiB chunks kept for the next call that needs one. A request that goes past its
// small chunk and back again, message after message (a websocket's handler, a loop over deep
// calls), would otherwise map and unmap 16 KiB each time: two syscalls, page faults and, in
// a worker with threads, a TLB shootdown across CPUs. CPython itself has the same seesaw at
// every 16 KiB boundary; a few cached chunks (64 KiB at most) end both.
constexpr size_t kCachedChunks = 4;

struct Pool {
  char* base = nullptr;
  size_t slots = 0;
  std::vector<uint32_t> free;       // slot numbers, last freed first
  std::vector<uint8_t> overflowed;  // per slot: a deeper chunk was chained behind it
  size_t used = 0;
  size_t overflow_count = 0;
  void* cached[kCachedChunks] = {};  // freed 16 KiB data-stack chunks, last freed last
  size_t cached_count = 0;
  PyObjectArenaAllocator previous{};  // the allocator before the hook: everything else
};

Pool* pool = nullptr;  // never destroyed: chunks may be freed during interpreter shutdown

bool owns(const void* p) {
  auto* c = static_cast<const char*>(p);
  return pool != nullptr && c >= pool->base && c < pool->base + pool->slots * kChunkBytes;
}

size_t slot_of(const void* p) {
  return static_cast<size_t>(static_cast<const char*>(p) - pool->base) / kChunkBytes;
}

void give_back(size_t slot) {
  pool->overflowed[slot] = 0;
  pool->free.push_back(static_cast<uint32_t>(slot));
  --pool->used;
}

void* hook_alloc(void*, size_t size) {
  if (size == kDataStackChunk && pool->cached_count > 0) return pool->cached[--pool->cached_count];
  return pool->previous.alloc(pool->previous.ctx, size);
}

void hook_free(void*, void* ptr, size_t size) {
  if (owns(ptr)) {
    // greenlet frees a finished greenlet's root chunk through the arena allocator.
    give_back(slot_of(ptr));
    return;
  }
#ifdef AIOWSGI_SMALL_FRAME_STACKS
  if (ptr != nullptr && size % kDataStackChunk == 0 && size <= kLargestChunkWatched) {
    // CPython frees a chunk when the call that needed it returns; the chunk still names the
    // one before it. Behind a small chunk, that means a core's calls go deeper than it.
    auto* chunk = static_cast<_PyStackChunk*>(ptr);
    if (owns(chunk->previous)) {
      size_t slot = slot_of(chunk->previous);
      if (!pool->overflowed[slot]) ++pool->overflow_count;
      pool->overflowed[slot] = 1;
    }
  }
#endif
  if (ptr != nullptr && size == kDataStackChunk && pool->cached_count < kCachedChunks) {
    pool->cached[pool->cached_count++] = ptr;
    return;
  }
  pool->previous.free(pool->previous.ctx, ptr, size);
}

}  // namespace

bool init(size_t slots) noexcept {
#ifdef AIOWSGI_SMALL_FRAME_STACKS
  if (pool != nullptr || slots == 0 || slots > UINT32_MAX) return pool != nullptr;
  // Reserved, not committed: a page becomes resident when a chunk on it is first used.
  void* base = mmap(nullptr, slots * kChunkBytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return false;
  auto* p = new (std::nothrow) Pool;
  if (p == nullptr) {
    munmap(base, slots * kChunkBytes);
    return false;
  }
  p->base = static_cast<char*>(base);
  p->slots = slots;
  p->overflowed.assign(slots, 0);
  p->free.reserve(slots);
  for (size_t i = slots; i > 0; --i) p->free.push_back(static_cast<uint32_t>(i - 1));
  PyObject_GetArenaAllocator(&p->previous);
  pool = p;
  PyObjectArenaAllocator hook{nullptr, hook_alloc, hook_free};
  PyObject_SetArenaAllocator(&hook);
  return true;
#else
  (void)slots;
  return false;
#endif
}

void* adopt() noexcept {
#ifdef AIOWSGI_SMALL_FRAME_STACKS
  PyThreadState* ts = PyThreadState_Get();
  if (pool == nullptr || pool->free.empty() || ts->datastack_chunk != nullptr) return nullptr;
  size_t slot = pool->free.back();
  pool->free.pop_back();
  ++pool->used;
  auto* chunk = reinterpret_cast<_PyStackChunk*>(pool->base + slot * kChunkBytes);
  chunk->previous = nullptr;
  chunk->size = kChunkBytes;
  chunk->top = 0;
  ts->datastack_chunk = chunk;
  // As CPython does for a root chunk: the first word is skipped, so that popping the
  // greenlet's first frame never mistakes this chunk for one to free.
  ts->datastack_top = &chunk->data[1];
  ts->datastack_limit = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(chunk) + kChunkBytes);
  return chunk;
#else
  return nullptr;
#endif
}

void settle(void** handle) noexcept {
#ifdef AIOWSGI_SMALL_FRAME_STACKS
  if (*handle == nullptr || pool == nullptr) return;
  auto* chunk = static_cast<_PyStackChunk*>(*handle);
  size_t slot = slot_of(chunk);
  if (!pool->overflowed[slot]) return;
  PyThreadState* ts = PyThreadState_Get();
  // Only with no frame of this greenlet left on the chunk (between requests, always).
  if (ts->datastack_chunk != chunk || ts->datastack_top != &chunk->data[1]) return;
  ts->datastack_chunk = nullptr;
  ts->datastack_top = nullptr;
  ts->datastack_limit = nullptr;
  give_back(slot);
  *handle = nullptr;
#else
  (void)handle;
#endif
}

size_t in_use() noexcept { return pool != nullptr ? pool->used : 0; }
size_t overflows() noexcept { return pool != nullptr ? pool->overflow_count : 0; }

}  // namespace aiowsgi::worker::frame_stack
