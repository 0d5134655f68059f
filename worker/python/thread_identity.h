// Each core is a thread of its own, as Python libraries see it. Inside a core,
// threading.get_ident() / _thread.get_ident(), threading.current_thread() and threading.local
// are the core's; outside cores (loop callbacks, real threads) they are the real thread's. So
// Django's connections (asgiref's Local), SQLAlchemy's scoped_session and every other
// per-thread cache keep one state per core, as gevent gives one per greenlet.
//
// How: the worker's thread state has one `dict` (PyThreadState_GetDict), where threading.local
// keeps its per-thread values. Each core has a dict of its own; whoever switches into or out of
// a core swaps the pointer (Core's switches, CoreGreenlet.switch/throw). get_ident() answers
// from the identity in force. The dict is made lazily: a core whose code never wrote into its
// thread's dict (most requests: no threading.local, no repr of a container) runs on one dict
// shared by all such cores, holding only the running loop; the first write makes that dict the
// core's own, checked as the core is left. Held requests then cost no dict each. Workers only; the
// worker's main thread; needs the GIL.
#pragma once

#include <Python.h>

namespace aiowsgi::worker::thread_identity {

// One core's identity. Lives as long as its core (the worker's life); not movable, because its
// address is the ident the core's code sees (unique: no thread's pthread_t can be the address
// of this object).
class Identity {
 public:
  Identity() = default;
  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;
  ~Identity();

  unsigned long ident() const noexcept { return reinterpret_cast<unsigned long>(this); }

 private:
  friend Identity* enter(Identity* next) noexcept;
  PyObject* dict_ = nullptr;  // owned; the shared dict once this core's code wrote into it
};

// Replaces _thread.get_ident and threading.get_ident with the core-aware one, on the thread
// that runs the cores (the caller's). Before the app is imported. False with a Python exception
// set on failure.
bool install() noexcept;

// Makes |next| (nullptr: the thread itself) the identity of the code that runs from now on, on
// the worker's thread (no effect on any other thread, or before install()). Returns the identity
// in force before, for the caller to restore once control comes back to it:
//   Identity* was = enter(core_identity); switch into the core; enter(was);
Identity* enter(Identity* next) noexcept;

// The identity in force on the worker's thread (nullptr: the thread's own).
Identity* current() noexcept;

// Core |core_id|'s identity, for CoreGreenlet.switch(), which knows the greenlet's core id
// only. Registered by the core when it is made; nullptr for an unknown id.
void register_core(long core_id, Identity* identity) noexcept;
Identity* of_core(long core_id) noexcept;

}  // namespace aiowsgi::worker::thread_identity
