#include "worker/python/thread_identity.h"

#include <pythread.h>

#include <vector>

namespace aiowsgi::worker::thread_identity {

namespace {

PyThreadState* g_tstate = nullptr;  // the worker's thread: it runs the loop and every core
PyObject* g_thread_dict = nullptr;  // owned: that thread's own PyThreadState dict
Identity* g_current = nullptr;      // in force on g_tstate; nullptr: the thread's own
std::vector<Identity*> g_cores;     // by core id
// The dict of every core that has none of its own yet: the running loop and nothing else.
// Most requests never touch their thread's dict (no threading.local, no repr of a container);
// a core gets a dict of its own only when its code writes into this shared one, and takes
// that one then (claim_if_written). Owned; made at the first entry into a core.
PyObject* g_pristine = nullptr;
PyObject* g_loop_key = nullptr;  // owned, interned kRunningLoopKey

// Where asyncio (the C _asyncio module of 3.11) keeps the running loop: in the thread-state
// dict, behind a cache that any other thread's lookup invalidates. A core's dict carries the
// same holder object, so asyncio.get_running_loop() and everything built on it (Future(),
// ensure_future(), get_event_loop()) keep finding the worker's loop inside a core.
constexpr const char* kRunningLoopKey = "__asyncio_running_event_loop__";

// A new dict for a core: empty but for the running loop. The worker runs one loop for its whole
// life, so the holder copied here stays the current one.
PyObject* new_core_dict() noexcept {
  // Called during switches, perhaps with an exception in flight (a throw into a core): keep it.
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject* dict = PyDict_New();
  if (dict != nullptr) {
    PyObject* holder = PyDict_GetItemString(g_thread_dict, kRunningLoopKey);  // borrowed
    if (holder != nullptr && PyDict_SetItemString(dict, kRunningLoopKey, holder) < 0)
      Py_CLEAR(dict);
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  return dict;
}

// The running-loop holder in the thread's own dict (borrowed), or nullptr.
PyObject* thread_loop_holder() noexcept {
  if (g_loop_key == nullptr) {
    g_loop_key = PyUnicode_InternFromString(kRunningLoopKey);
    if (g_loop_key == nullptr) return nullptr;
  }
  return PyDict_GetItemWithError(g_thread_dict, g_loop_key);
}

// Whether the shared dict still holds exactly what new_core_dict() put in it.
bool pristine_untouched(PyObject* holder) noexcept {
  if (PyDict_GET_SIZE(g_pristine) != (holder != nullptr ? 1 : 0)) return false;
  return holder == nullptr || PyDict_GetItemWithError(g_pristine, g_loop_key) == holder;
}

// On the way out of a core that ran on the shared dict: if its code wrote into it (a
// threading.local value, repr's recursion guard, a running loop of its own), that dict becomes
// the core's own (*leaving_dict) and the next core without one gets a fresh shared dict.
void claim_if_written(PyObject** leaving_dict) noexcept {
  if (g_pristine == nullptr || g_tstate->dict != g_pristine) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!pristine_untouched(thread_loop_holder())) {
    *leaving_dict = g_pristine;  // the reference moves to the core
    g_pristine = nullptr;
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
}

// The shared dict for a core entering without a dict of its own; nullptr when out of memory.
PyObject* pristine_dict() noexcept {
  if (g_pristine != nullptr) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    bool current = pristine_untouched(thread_loop_holder());
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    if (current) return g_pristine;
    // A loop set or stopped outside any core since it was made: never handed out stale.
    Py_CLEAR(g_pristine);
  }
  g_pristine = new_core_dict();
  return g_pristine;
}

// _thread.get_ident() / threading.get_ident(), core-aware.
PyObject* get_ident(PyObject*, PyObject*) noexcept {
  if (g_current != nullptr && PyThreadState_Get() == g_tstate)
    return PyLong_FromUnsignedLong(g_current->ident());
  return PyLong_FromUnsignedLong(PyThread_get_thread_ident());
}

PyMethodDef kGetIdentDef = {
    "get_ident", get_ident, METH_NOARGS,
    "get_ident() -> integer\n\nA nonzero integer that identifies the current thread among "
    "the threads that exist at the same time. Under aiowsgi each request core is a thread of "
    "its own: inside a request this identifies its core."};

}  // namespace

Identity::~Identity() {
  if (g_current == this) enter(nullptr);
  for (Identity*& slot : g_cores)
    if (slot == this) slot = nullptr;
  Py_XDECREF(dict_);
}

bool install() noexcept {
  if (g_tstate == nullptr) {
    PyObject* dict = PyThreadState_GetDict();  // borrowed; made if the thread has none yet
    if (dict == nullptr) {
      PyErr_SetString(PyExc_RuntimeError, "no thread-state dict");
      return false;
    }
    Py_INCREF(dict);
    g_thread_dict = dict;
    g_tstate = PyThreadState_Get();
  }
  PyObject* fn = PyCFunction_New(&kGetIdentDef, nullptr);
  if (fn == nullptr) return false;
  bool ok = true;
  for (const char* name : {"_thread", "threading"}) {
    PyObject* mod = PyImport_ImportModule(name);
    if (mod == nullptr || PyObject_SetAttrString(mod, "get_ident", fn) < 0) ok = false;
    Py_XDECREF(mod);
    if (!ok) break;
  }
  Py_DECREF(fn);
  return ok;
}

Identity* enter(Identity* next) noexcept {
  Identity* prev = g_current;
  if (next == prev || g_tstate == nullptr || PyThreadState_Get() != g_tstate) return prev;
  if (prev != nullptr && prev->dict_ == nullptr) claim_if_written(&prev->dict_);
  PyObject* dict = g_thread_dict;
  if (next != nullptr) {
    dict = next->dict_ != nullptr ? next->dict_ : pristine_dict();
    // Out of memory: the core goes on as the thread itself rather than fail the switch.
    if (dict == nullptr) return prev;
  }
  // The owner keeps its dict alive, so the old pointer's decref never runs any code.
  Py_INCREF(dict);
  PyObject* old = g_tstate->dict;
  g_tstate->dict = dict;
  Py_XDECREF(old);
  g_current = next;
  return prev;
}

Identity* current() noexcept { return g_current; }

void register_core(long core_id, Identity* identity) noexcept {
  if (core_id < 0) return;
  if (g_cores.size() <= static_cast<size_t>(core_id))
    g_cores.resize(static_cast<size_t>(core_id) + 1, nullptr);
  g_cores[static_cast<size_t>(core_id)] = identity;
}

Identity* of_core(long core_id) noexcept {
  if (core_id < 0 || static_cast<size_t>(core_id) >= g_cores.size()) return nullptr;
  return g_cores[static_cast<size_t>(core_id)];
}

}  // namespace aiowsgi::worker::thread_identity
