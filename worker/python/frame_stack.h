// Frame stack: small first data-stack chunks for core greenlets (CPython 3.11).
//
// CPython 3.11 keeps a thread's Python frames in "data stack" chunks of at least 16 KiB, and
// greenlet gives every greenlet a chunk chain of its own, so a suspended core greenlet holds a
// whole page of RAM for frames that usually take a few hundred bytes (the app's function and
// a few callees). At 10,000 held requests that page was the largest single cost.
// A core greenlet therefore starts on a 512-byte root chunk carved from a worker-wide pool,
// and keeps it for its life. Deeper calls still get CPython's own 16 KiB chunks, chained
// behind it and freed as they return; freed ones are kept in a small cache for the next
// deeper call, so a request that goes past its small chunk costs no mmap/munmap. A request
// suspended in its top function (the seed's) holds half a KiB of frame stack; one suspended
// deeper also holds the 16 KiB chunk its frames are on, of which the touched pages are resident.
// The pool recognises its chunks where CPython and greenlet free them, through the arena
// allocator hook (the allocator both use for these chunks). Workers only, GIL held.
#pragma once

#include <cstddef>

namespace aiowsgi::worker::frame_stack {

// Reserves room for |slots| small chunks and hooks the arena allocator. Call once per worker
// process with the GIL held. False (nothing changed) when this CPython's data stack is not
// the one this code knows (3.11) or the reservation failed: cores then use CPython's chunks.
bool init(size_t slots) noexcept;

// On a core greenlet that has no Python frame yet: gives it a small root chunk, its own until
// the greenlet ends. False (pool exhausted, unsupported, frames present): the greenlet then
// uses CPython's own chunks.
bool adopt() noexcept;

// Small chunks in use, and small chunks a call went past at least once (overflows), for the debug
// log and tests.
size_t in_use() noexcept;
size_t overflows() noexcept;

}  // namespace aiowsgi::worker::frame_stack
