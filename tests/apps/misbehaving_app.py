"""Fixture app for tests/e2e/test_misbehaving.py and test_hostile.py: one WSGI-contract
violation per path (SPEC.md: a clean 500 before headers, a closed connection after them, a
logged reason, and the worker keeps serving), plus a few well-behaved helpers.

E2E_RECORD (env): file where /slow and /exit write "<event> <pid> <tag>" lines, so a test
knows which worker held which request.
"""
import asyncio
import ctypes
import os
import sys
import urllib.parse

import greenlet

RECORD = os.environ.get("E2E_RECORD", "")


def record(*words):
    if RECORD:
        with open(RECORD, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\n")


def suspend(seconds):
    me = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(seconds, me.switch)
    me.parent.switch()


def ok(start_response, body=b"ok"):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    if path == "/":
        return ok(start_response)
    if path == "/pid":
        return ok(start_response, str(os.getpid()).encode())
    if path == "/slow":  # in flight for a while; says which worker served it
        record("start", os.getpid(), q.get("tag", ""))
        suspend(float(q.get("s", "1")))
        return ok(start_response, str(os.getpid()).encode())
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return ok(start_response, str(len(body)).encode())
    if path == "/big":  # for slow readers: more than the socket buffers hold
        n = int(q.get("n", str(8 << 20)))
        start_response("200 OK", [("Content-Length", str(n))])
        return (b"x" * 65536 for _ in range(n // 65536))

    # ---- contract violations ------------------------------------------------------------
    if path == "/no-start-response":
        return [b"body without headers"]
    if path == "/no-start-response-empty":
        return []
    if path == "/exc-info-replaces":  # PEP 3333's error path: a new head before any byte
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise RuntimeError("late failure")
        except RuntimeError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                       ("X-Second", "2")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc-info-bad-replacement":  # an invalid new head: the first one stands
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise RuntimeError("late failure")
        except RuntimeError:
            try:
                start_response("503 Service Unavailable", [("X-Bad", "a\r\nInjected: 1")],
                               sys.exc_info())
            except ValueError:
                pass
        return [b"first"]
    if path == "/start-response-twice":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"twice"]
    if path == "/str-item":  # a str where bytes are required, as the first item
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]
    if path == "/int-item-later":  # bytes first, then an int: headers are out by then
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"first part ", 42]
    if path == "/raise-mid":
        def gen():
            yield b"partial "
            suspend(0.05)
            raise RuntimeError("iterable failed mid-stream")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/longer-than-cl":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"0123456789"]
    if path == "/shorter-than-cl":
        start_response("200 OK", [("Content-Length", "100")])
        return [b"only twenty bytes..."]
    if path == "/bad-status":
        status = {"1": "200", "2": "OK 200", "3": "99 Too Low", "4": "200 OK\r\nX-Injected: 1",
                  "5": "2000 Long", "6": 200}[q.get("v", "1")]
        start_response(status, [("Content-Type", "text/plain")])
        return [b"bad status"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"bad header"]
    if path == "/sys-exit":
        sys.exit(3)
    if path == "/exit":  # kills the whole worker process: only its own requests may be lost
        record("exit", os.getpid(), q.get("tag", ""))
        os._exit(7)
    if path == "/segfault":
        record("exit", os.getpid(), q.get("tag", ""))
        ctypes.string_at(0)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
