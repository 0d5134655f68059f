"""Shared by the test apps of tests/e2e/test_threads_*.py: lets concurrent requests of one
worker meet at a known point (a barrier, a hold the test releases, a phase the test polls)
instead of hoping that sleeps overlap, and serves small JSON apps.

Everything waits by suspending the calling core (aiowsgi.sleep), so the loop keeps serving
the test's other requests meanwhile; every wait gives up after HOLD_LIMIT seconds so that a
broken server fails the test instead of hanging it. One worker per server: this state is
per process.
"""
import asyncio
import json
import time
import traceback
from urllib.parse import parse_qs

import aiowsgi

HOLD_LIMIT = 10.0
_entered = {}  # barrier group -> how many requests reached it
_released = set()  # hold keys the test released
_phases = {}  # key -> the last phase a request reported


def wait_until(predicate, limit=HOLD_LIMIT, step=0.02):
    """Suspends this core until predicate() is true or `limit` seconds passed; returns it."""
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        aiowsgi.sleep(step)
    return predicate()


def meet(group, count):
    """A barrier: suspends until `count` requests called meet(group) (all of them are then
    inside the worker at once, so each is on a core of its own)."""
    _entered[group] = _entered.get(group, 0) + 1
    return wait_until(lambda: _entered[group] >= int(count))


def set_phase(key, value):
    _phases[key] = value


def phase(key):
    return _phases.get(key, "")


def hold(key):
    """Suspends this core until the test calls /release?key=KEY."""
    return wait_until(lambda: key in _released)


async def hold_async(key):
    """hold() for a coroutine running on the worker's loop."""
    deadline = time.monotonic() + HOLD_LIMIT
    while key not in _released and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return key in _released


def release(key):
    _released.add(key)
    return "released"


def error_text(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def json_app(routes):
    """A WSGI app that answers each path in `routes` (a function of the query parameters,
    one value each) with its result as JSON, plus / (readiness), /phase and /release. An
    exception gives a 500 whose JSON names it, so a failing test shows the app's error."""
    routes = dict(routes)
    routes.setdefault("/", lambda q: "ok")
    routes.setdefault("/phase", lambda q: phase(q["key"]))
    routes.setdefault("/release", lambda q: release(q["key"]))

    def application(environ, start_response):
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        view = routes.get(environ["PATH_INFO"])
        if view is None:
            status, result = "404 Not Found", {"error": "no such path"}
        else:
            try:
                status, result = "200 OK", view(query)
            except Exception as e:  # the test reads it from the body
                status = "500 Internal Server Error"
                result = {"error": error_text(e), "traceback": traceback.format_exc()}
        body = json.dumps(result).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))])
        return [body]

    return application
