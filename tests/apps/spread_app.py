"""Fixture app for the load-spreading tests.

/hold?s=N   suspends this core for N seconds on the worker's loop, then 200 "held <pid>"
/block?s=N  blocks the worker's whole loop for N seconds (a stand-in for CPU-bound work)
/           200 "hello <pid>"
"""
import asyncio
import os
import time

import greenlet


def application(environ, start_response):
    path = environ["PATH_INFO"]
    seconds = float(environ.get("QUERY_STRING", "").partition("=")[2] or 1)
    if path == "/hold":
        me = greenlet.getcurrent()
        asyncio.get_event_loop().call_later(seconds, me.switch)
        me.parent.switch()
        body = b"held %d" % os.getpid()
    elif path == "/block":
        time.sleep(seconds)
        body = b"blocked %d" % os.getpid()
    else:
        body = b"hello %d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
