// Frame stack: small first data-stack chunks for core greenlets (CPython 3.11).
//
// CPython 3.11 keeps a thread's Python frames in "data stack" chunks of at least 16 KiB, and
// greenlet gives every greenlet a chunk chain of its own, so a suspended core greenlet holds a
// whole page of RAM for frames that usually take a few hundred bytes (the app's function and
// a few callees). At 10,000 held requests that page was the largest single cost.
// A core greenlet therefore starts on a 1 KiB root chunk carved from a worker-wide pool.
// Deeper calls still get CPython's own 16 KiB chunks, chained behind it and freed as they
// return (into a cache of a few, so that a request crossing the boundary again and again does
// not map and unmap one each time); a core whose requests overflowed the small chunk gives it
// back between requests and uses CPython's own chunks from then on.
// The pool recognises its chunks where CPython and greenlet free them, through the arena
// allocator hook (the allocator both use for these chunks). Workers only, GIL held.
#pragma once

#include <cstddef>

namespace aiowsgi::worker::frame_stack {

// Reserves room for |slots| small chunks and hooks the arena allocator. Call once per worker
// process with the GIL held. False (nothing changed) when this CPython's data stack is not
// the one this code knows (3.11) or the reservation failed: cores then use CPython's chunks.
bool init(size_t slots) noexcept;

// On a core greenlet that has no Python frame yet: gives it a small root chunk. Returns an
// opaque handle for settle(), or nullptr (pool exhausted, unsupported, frames present): the
// greenlet then uses CPython's own chunks.
void* adopt() noexcept;

// On the same greenlet between requests (no Python frame of its own): when a call went past
// the small chunk since the last check, gives the chunk back and lets CPython allocate its
// own from now on; *handle becomes nullptr then. Nothing happens for a nullptr handle.
void settle(void** handle) noexcept;

// Small chunks in use, and calls that went past one (overflows), for the debug log and tests.
size_t in_use() noexcept;
size_t overflows() noexcept;

}  // namespace aiowsgi::worker::frame_stack
