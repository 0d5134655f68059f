"""Fixture for tests/e2e/test_threads_locals.py: per-thread state, context variables, sync code
calling async code, and locks, as Python code sees them inside request cores and outside."""
import _thread
import asyncio
import contextvars
import threading
import time

import greenlet
from asgiref.sync import async_to_sync
from core_sync import error_text, hold_async, json_app, meet, set_phase

import aiowsgi

LOCAL = threading.local()
REQUEST_VAR = contextvars.ContextVar("request_var")
IMPORT_VAR = contextvars.ContextVar("import_var")
IMPORT_VAR.set("set at import")
# Created at import, as apps create them; shared by every core of the worker.
class _LockMaker:
    # As werkzeug's routing Map keeps it: threading.Lock as a class attribute, called through
    # an instance (a Python function there would bind as a method).
    lock_class = threading.Lock
    rlock_class = threading.RLock


LOCKS = {"lock": threading.Lock(), "rlock": threading.RLock(),
         "lock_attr": _LockMaker().lock_class(), "rlock_attr": _LockMaker().rlock_class()}


def identity():
    """What a library sees of the thread it runs on."""
    return {"ident": threading.get_ident(), "_thread": _thread.get_ident(),
            "current": threading.current_thread().ident,
            "current_name": threading.current_thread().name,
            "is_main": threading.current_thread() is threading.main_thread(),
            "local": getattr(LOCAL, "value", None)}


def local_view(q):
    """Sets the thread-local value to the request's id, meets the other requests of its
    group (all suspended at once, on distinct cores), then reads the value back."""
    LOCAL.value = q["id"]
    before = identity()
    meet(q["group"], q["n"])
    return {"before": before, "after": identity(), "core": aiowsgi.core_id()}


def outside_view(q):
    """This core's identity, a loop callback's and a real thread's (the loop's executor)."""
    LOCAL.value = "core"
    me = greenlet.getcurrent()
    seen = {}

    def callback():
        seen.update(identity())
        seen["main_ident"] = threading.main_thread().ident
        me.switch()

    aiowsgi.loop().call_soon(callback)
    me.parent.switch()

    def in_thread():
        return dict(identity(), thread_ident=threading.current_thread().ident)

    threaded = aiowsgi.await_(aiowsgi.loop().run_in_executor(None, in_thread), timeout=10)
    return {"core": identity(), "callback": seen, "thread": threaded}


def ctx_set(q):
    previous = REQUEST_VAR.get("unset")
    REQUEST_VAR.set(q["v"])
    return {"previous": previous, "now": REQUEST_VAR.get("unset"), "core": aiowsgi.core_id()}


def ctx_get(q):
    return {"value": REQUEST_VAR.get("unset"), "import": IMPORT_VAR.get("unset"),
            "core": aiowsgi.core_id()}


async def answer(value):
    await asyncio.sleep(0)
    return value


def asyncio_api(q):
    """The seed's programming model inside a core: the running loop, tasks and futures."""
    loop = asyncio.get_running_loop()
    out = {"running_is_worker_loop": loop is aiowsgi.loop(),
           "get_event_loop_is_worker_loop": asyncio.get_event_loop() is aiowsgi.loop()}
    out["create_task"] = aiowsgi.await_(asyncio.create_task(answer("task")), timeout=10)
    out["ensure_future"] = aiowsgi.await_(asyncio.ensure_future(answer("ensured")), timeout=10)
    out["Task"] = aiowsgi.await_(asyncio.Task(answer("Task")), timeout=10)
    future = asyncio.Future()
    loop.call_soon(future.set_result, "future")
    out["Future"] = aiowsgi.await_(future, timeout=10)
    return out


async def work(key):
    """Waits (on the worker's loop) until the test releases `key`; `fail-*` keys raise."""
    if key.startswith("fail"):
        await asyncio.sleep(0.01)
        raise ValueError("work failed: " + key)
    set_phase(key, "waiting")
    released = await hold_async(key)
    return "result %s released=%s" % (key, released)


def run_view(q):
    """Sync code calling async code: asyncio.run() or asgiref's async_to_sync()."""
    start = time.monotonic()
    try:
        if q["via"] == "asyncio":
            result = asyncio.run(work(q["key"]))
        else:
            result = async_to_sync(work)(q["key"])
    except Exception as e:  # the test checks that the coroutine's exception arrives here
        return {"raised": error_text(e), "elapsed": time.monotonic() - start}
    return {"result": result, "elapsed": time.monotonic() - start,
            "core": aiowsgi.core_id(), "loop_still_worker_loop":
                asyncio.get_running_loop() is aiowsgi.loop()}


def lock_view(q):
    """Two requests meet, then each holds the shared lock across a suspension."""
    lock = LOCKS[q["kind"]]
    meet(q["group"], q["n"])
    wanted = time.monotonic()
    with lock:
        acquired = time.monotonic()
        aiowsgi.sleep(float(q.get("hold", "0.3")))
        if q["kind"].startswith("rlock"):
            with lock:  # re-entrant within the request, across a suspension too
                aiowsgi.sleep(0.01)
        released = time.monotonic()
    return {"wanted": wanted, "acquired": acquired, "released": released,
            "core": aiowsgi.core_id()}


application = json_app({
    "/local": local_view,
    "/outside": outside_view,
    "/ctx/set": ctx_set,
    "/ctx/get": ctx_get,
    "/asyncio": asyncio_api,
    "/run": run_view,
    "/lock": lock_view,
})
