// The contextvars context of a request: each request starts in a fresh copy of the worker's base
// context (the one the app was imported in), as asyncio runs each Task in a copy of the context
// it was created in. A ContextVar one request sets is never seen by the next request its core
// serves. Workers only; needs the GIL.
#pragma once

namespace aiowsgi::worker::request_context {

// On the loop's greenlet, once the app is imported: takes a copy of the current context as the
// base. False with a Python exception set on failure.
bool capture_base() noexcept;

// Inside a core, before the app is called: the running greenlet's context becomes a fresh copy
// of the base (or none at all while the base is empty: contextvars then makes an empty one on
// first use, so a request that sets no variable costs nothing). False with a Python exception
// set on failure.
bool begin() noexcept;

}  // namespace aiowsgi::worker::request_context
