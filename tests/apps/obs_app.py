"""Fixture app for the observability tests (stats socket, /metrics, access log, aiowsgi-top).

/              200 "hello"
/slow?s=N      suspends this core for N seconds on the worker's loop, then 200
/hold?PATH     suspends this core until the file PATH exists, then 200 (conftest's
               request_every_core)
/boom          raises (500, one exception)
/status/NNN    answers with status NNN
"""
import asyncio
import os

import greenlet


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        seconds = float(environ.get("QUERY_STRING", "").partition("=")[2] or 1)
        me = greenlet.getcurrent()
        asyncio.get_event_loop().call_later(seconds, me.switch)
        me.parent.switch()
    elif path == "/hold":
        release = environ.get("QUERY_STRING", "")
        me = greenlet.getcurrent()
        while not os.path.exists(release):
            asyncio.get_event_loop().call_later(0.02, me.switch)
            me.parent.switch()
    elif path == "/boom":
        raise RuntimeError("boom (expected by the test)")
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        start_response("%d Whatever" % code, [("Content-Type", "text/plain")])
        return [b"status %d" % code]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
