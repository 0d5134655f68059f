"""Fixture for tests/e2e/test_await.py: aiowsgi.await_ and friends from plain WSGI views."""
import asyncio
import json
import time
import traceback
from urllib.parse import parse_qs

import aiowsgi

state = {"cancelled": 0, "finished": 0, "callback_error": ""}


async def work(seconds, value):
    await asyncio.sleep(seconds)
    return value


async def deep_failure():
    await asyncio.sleep(0.01)
    raise ValueError("failed inside the coroutine")


async def tracked(seconds):
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        state["cancelled"] += 1
        raise
    state["finished"] += 1
    return "done"


async def spawned_failure():
    raise KeyError("spawned task failed")


# await_ at import time must refuse clearly.
_coro = work(0, None)
try:
    aiowsgi.await_(_coro)
    IMPORT_ERROR = "no error"
except RuntimeError as e:
    IMPORT_ERROR = str(e)
finally:
    _coro.close()


def from_callback():
    coro = work(0, None)
    try:
        aiowsgi.await_(coro)
        state["callback_error"] = "no error"
    except RuntimeError as e:
        state["callback_error"] = str(e)
    finally:
        coro.close()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    loop = aiowsgi.loop()
    out = None
    if path == "/":
        out = "ok"
    elif path == "/result":
        start = time.monotonic()
        value = aiowsgi.await_(work(float(q.get("t", "0.1")), "core %d" % aiowsgi.core_id()))
        out = "%s %.2f" % (value, time.monotonic() - start)
    elif path == "/exception":
        try:
            aiowsgi.await_(deep_failure())
            out = "no exception"
        except ValueError as e:
            out = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    elif path == "/timeout":
        task = loop.create_task(tracked(5))
        start = time.monotonic()
        try:
            aiowsgi.await_(task, timeout=0.3)
            out = "no timeout"
        except TimeoutError:
            aiowsgi.sleep(0.05)  # let the cancellation reach the task
            out = "timeout %.2f cancelled=%s" % (time.monotonic() - start, task.cancelled())
    elif path == "/task":
        out = aiowsgi.await_(loop.create_task(work(0.1, "from a task")))
    elif path == "/future":
        fut = loop.create_future()
        loop.call_later(0.1, fut.set_result, "from a future")
        out = aiowsgi.await_(fut)
    elif path == "/sleep":
        start = time.monotonic()
        aiowsgi.sleep(0.2)
        out = "slept %.2f" % (time.monotonic() - start)
    elif path == "/hang":
        out = aiowsgi.await_(tracked(float(q.get("t", "30"))))
    elif path == "/hang_keep":
        out = aiowsgi.await_(tracked(float(q.get("t", "1"))), cancel_on_disconnect=False)
    elif path == "/state":
        out = json.dumps(state)
    elif path == "/import_error":
        out = IMPORT_ERROR
    elif path == "/callback_error":
        loop.call_soon(from_callback)
        aiowsgi.sleep(0.05)
        out = state["callback_error"]
    elif path == "/ids":
        out = json.dumps({"worker": aiowsgi.worker_id(), "core": aiowsgi.core_id(),
                          "loop": type(aiowsgi.loop()).__module__})
    elif path == "/spawn":
        aiowsgi.spawn(spawned_failure())
        out = "spawned"
    body = (out if out is not None else "not found").encode()
    start_response("200 OK" if out is not None else "404 Not Found",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
