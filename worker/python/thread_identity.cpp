#include "worker/python/thread_identity.h"

#include <pythread.h>

#include <vector>

namespace aiowsgi::worker::thread_identity {

namespace {

PyThreadState* g_tstate = nullptr;  // the worker's thread: it runs the loop and every core
PyObject* g_thread_dict = nullptr;  // owned: that thread's own PyThreadState dict
Identity* g_current = nullptr;      // in force on g_tstate; nullptr: the thread's own
std::vector<Identity*> g_cores;     // by core id

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
  PyObject* dict = g_thread_dict;
  if (next != nullptr) {
    if (next->dict_ == nullptr) next->dict_ = new_core_dict();
    // Out of memory: the core goes on as the thread itself rather than fail the switch.
    if (next->dict_ == nullptr) return prev;
    dict = next->dict_;
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
