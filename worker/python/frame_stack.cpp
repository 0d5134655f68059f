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

// Room for the app's function that suspends and a small callee (a frame is ~10 words plus its
// locals and value stack): what a request suspended in its top function keeps. Calls deeper
// than that (asyncio's call_later alone is four frames) run on an overflow chunk from the
// cache below and give it back as they return. The first word is never used: see adopt().
constexpr size_t kChunkBytes = 512;
// CPython's own chunks are 16 KiB times a power of two; obmalloc's arenas are far larger.
constexpr size_t kDataStackChunk = 16 * 1024;
constexpr size_t kLargestChunkWatched = 128 * 1024;
// CPython's 16 KiB chunks freed by calls that went past a small chunk, kept for the next such
// call instead of an munmap and an mmap each time (26-46 us together on a slow VM). Bounded:
// only chunks in use by suspended requests are out of it at any time.
constexpr size_t kCachedChunks = 16;

struct Pool {
  char* base = nullptr;
  size_t slots = 0;
  std::vector<uint32_t> free;       // slot numbers, last freed first
  std::vector<uint8_t> overflowed;  // per slot: a deeper chunk was chained behind it
  std::vector<void*> cached;        // 16 KiB chunks ready for the next overflow
  size_t used = 0;
  size_t overflow_count = 0;
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
  if (size == kDataStackChunk && !pool->cached.empty()) {
    void* chunk = pool->cached.back();
    pool->cached.pop_back();
    return chunk;
  }
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
    if (size == kDataStackChunk && pool->cached.size() < kCachedChunks) {
      pool->cached.push_back(ptr);
      return;
    }
  }
#endif
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
  p->cached.reserve(kCachedChunks);  // hook_free never allocates
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

bool adopt() noexcept {
#ifdef AIOWSGI_SMALL_FRAME_STACKS
  PyThreadState* ts = PyThreadState_Get();
  if (pool == nullptr || pool->free.empty() || ts->datastack_chunk != nullptr) return false;
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
  return true;
#else
  return false;
#endif
}

size_t in_use() noexcept { return pool != nullptr ? pool->used : 0; }
size_t overflows() noexcept { return pool != nullptr ? pool->overflow_count : 0; }

}  // namespace aiowsgi::worker::frame_stack
