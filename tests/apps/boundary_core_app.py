"""Fixture app for tests/e2e/test_boundary_core.py: requests that keep what the server handed
them (their greenlet, write(), wsgi.input, the list they returned) past their end, use it from
a loop callback, or raise GreenletExit (SPEC.md "Python side": one request's mistakes never
reach another request, and never crash or stall the worker).

Every body starts with the request's token (?t=...), so a client can tell its own body from
another client's. What a loop callback of request t saw is kept for /result?t=...
"""
import asyncio
import os
import urllib.parse

import greenlet

import aiowsgi

try:
    import uwsgi
except ImportError:
    uwsgi = None

RESULTS = {}  # token -> what a callback of that request saw
SAVED = {}    # things a request kept for a later one
GARBAGE = []  # keeps reallocated memory busy after /biglist dropped its items


def loop():
    return asyncio.get_event_loop()


def outcome(fn):
    """'ok' or the exception's type and message."""
    try:
        fn()
        return "ok"
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return "%s: %s" % (type(e).__name__, e)


def own_wait(seconds):
    """Suspends this core until its own timer fires. True if that timer is what resumed it,
    False if something else (a stale wake-up) switched into the greenlet first."""
    me = greenlet.getcurrent()
    fired = []

    def mine():
        fired.append(True)
        me.switch()

    handle = loop().call_later(seconds, mine)
    me.parent.switch()
    handle.cancel()
    return bool(fired)


def run_in_callback(fn):
    """Runs fn in a loop callback (the main greenlet) while this request waits; returns its
    outcome."""
    me = greenlet.getcurrent()
    box = []

    def cb():
        box.append(outcome(fn))
        me.switch()

    loop().call_soon(cb)
    while not box:
        me.parent.switch()
    return box[0]


def reply(start_response, text):
    data = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    t = q.get("t", "-")
    d = float(q.get("d", "0.3"))
    if path in ("/", "/pid"):
        return reply(start_response, str(os.getpid()))
    if path == "/result":
        return reply(start_response, RESULTS.get(t, "pending"))
    if path == "/echo":  # suspends on its own timer: says whether that timer resumed it
        own = own_wait(d)
        return reply(start_response, "%s %s %d" % (t, "own" if own else "STALE", os.getpid()))

    # ---- a wake-up left pending ----------------------------------------------------------
    if path == "/leave":  # returns at once, its wake-up still scheduled
        loop().call_later(d, greenlet.getcurrent().switch)
        return reply(start_response, t)
    if path == "/leave-and-wait":  # waits for a wake-up that harakiri pre-empts
        me = greenlet.getcurrent()
        loop().call_later(d, me.switch)
        me.parent.switch()
        return reply(start_response, t + " resumed")

    # ---- write() past its request, or from a loop callback --------------------------------
    if path == "/saved-write-gen":  # generator response; a callback writes after the end
        write = start_response("200 OK", [("Content-Type", "text/plain")])

        def late():
            RESULTS[t] = outcome(lambda: write(b"late bytes"))

        loop().call_later(d, late)
        return (chunk for chunk in [t.encode(), b" body"])
    if path == "/write-callback":  # live request; a loop callback calls its write()
        n = int(q.get("n", "100"))
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        RESULTS[t] = run_in_callback(lambda: write(b"X" * n))
        return [t.encode()]
    if path == "/save-write":
        SAVED["write"] = start_response("200 OK", [("Content-Type", "text/plain")])
        return [t.encode()]
    if path == "/use-saved-write":  # another request's write(), from inside this request
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%s %s" % (t, outcome(lambda: SAVED["write"](b"STALE")))).encode()]

    # ---- wsgi.input past its request, or from a loop callback -----------------------------
    if path == "/save-input":
        SAVED["input"] = environ["wsgi.input"]
        return reply(start_response, t)
    if path == "/use-saved-input":
        environ["wsgi.input"].read()
        return reply(start_response, "%s %s" % (t, outcome(lambda: SAVED["input"].read())))
    if path == "/input-callback":
        stream = environ["wsgi.input"]
        seen = run_in_callback(lambda: stream.read())
        body = stream.read()
        return reply(start_response, "%s %s %d" % (t, seen, len(body)))

    # ---- uwsgi / aiowsgi functions from a loop callback -----------------------------------
    if path == "/module-callback":
        checks = {
            "await_": lambda: aiowsgi.await_(asyncio.sleep(0)),
            "sleep": lambda: aiowsgi.sleep(0),
        }
        if uwsgi is not None:
            checks.update({
                "connection_fd": uwsgi.connection_fd,
                "websocket_send": lambda: uwsgi.websocket_send(b"x"),
                "websocket_recv_nb": uwsgi.websocket_recv_nb,
                "suspend": uwsgi.suspend,
                "wait_fd_read": lambda: uwsgi.wait_fd_read(0),
                "async_sleep": lambda: uwsgi.async_sleep(0),
            })
        seen = {name: run_in_callback(fn).split(":")[0] for name, fn in sorted(checks.items())}
        return reply(start_response, t + " " + " ".join("%s=%s" % kv for kv in seen.items()))

    # ---- GreenletExit raised by the app ---------------------------------------------------
    if path == "/greenlet-exit":
        raise greenlet.GreenletExit("raised by the app " + t)
    if path == "/greenlet-exit-mid":
        def gen():
            yield t.encode()
            raise greenlet.GreenletExit("raised mid-stream " + t)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    # ---- a big list whose items the app drops while the server sends them -----------------
    if path == "/biglist":
        items, size = int(q.get("items", "64")), int(q.get("size", "262144"))
        body = [(b"%s:%d:" % (t.encode(), i)).ljust(size, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i % 26:][:1])
                for i in range(items)]

        def mutate():
            body.clear()
            GARBAGE[:] = [b"Z" * size for _ in range(items)]
            RESULTS[t] = "mutated"

        loop().call_later(d, mutate)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body
    # ---- a file the app closes (and whose fd number it reuses) while the server sends it ---
    if path == "/filewrapper-close":
        import tempfile
        size = int(q.get("size", "8388608"))
        f = tempfile.TemporaryFile()
        f.write(t.encode().ljust(size, b"F"))
        f.seek(0)

        def close_and_reuse():
            fd = f.fileno()
            f.close()
            other = tempfile.TemporaryFile()  # most likely gets fd's number back
            other.write(b"Z" * size)
            other.seek(0)
            GARBAGE.append(other)
            RESULTS[t] = "closed" if other.fileno() == fd else "closed (other fd)"

        loop().call_later(d, close_and_reuse)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
