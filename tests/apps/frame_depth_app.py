"""Requests that suspend at a chosen depth of Python calls, with locals on every frame that
must still hold their values when the request resumes (tests/e2e/test_frame_stack.py).

GET /?depth=N&t=TOKEN&delay=S  -> "TOKEN N" after suspending S seconds N calls deep
GET /pid                       -> the worker's pid
GET /seesaw?n=N&depth=D        -> "N": N calls D deep and back in one request, no suspension
"""
import asyncio
import os

import greenlet


def wake(me):
    me.switch()


def descend(n, token, delay):
    if n == 0:
        me = greenlet.getcurrent()
        asyncio.get_event_loop().call_later(delay, wake, me)
        me.parent.switch()
        return token
    # Locals on this frame, checked after the suspension below it.
    mine = (n, token, [n] * 4)
    result = descend(n - 1, token, delay)
    if mine != (n, token, [n] * 4):
        raise AssertionError("frame %d lost its locals: %r" % (n, mine))
    return result


def plain(n):
    return plain(n - 1) + 1 if n else 0


def application(environ, start_response):
    if environ["PATH_INFO"] == "/pid":
        body = str(os.getpid()).encode()
    elif environ["PATH_INFO"] == "/seesaw":
        q = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
        n, depth = int(q["n"]), int(q["depth"])
        body = str(sum(plain(depth) == depth for _ in range(n))).encode()
    else:
        q = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
        depth = int(q.get("depth", "0"))
        token = q.get("t", "")
        result = descend(depth, token, float(q.get("delay", "0.05")))
        body = ("%s %d" % (result, depth)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
