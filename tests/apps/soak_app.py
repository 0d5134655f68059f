"""Fixture app for bench/soak and tests/e2e/test_soak.py: GET, POST echo and suspended
requests. Each request appends "<pid> <tag>" to $SOAK_RECORD when it starts, so the soak can
tell which worker held a request that failed (one O_APPEND write per request)."""
import asyncio
import os

import greenlet

RECORD = os.environ.get("SOAK_RECORD", "")
_fd = None


def note(tag):
    global _fd
    if not RECORD or not tag:
        return
    if _fd is None:
        _fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.write(_fd, b"%d %s\n" % (os.getpid(), tag.encode()))


def application(environ, start_response):
    qs = environ.get("QUERY_STRING", "")
    tag = qs.partition("tag=")[2].partition("&")[0]
    note(tag)
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        out = b"%d" % len(body)
    elif path == "/suspend":
        me = greenlet.getcurrent()
        asyncio.get_event_loop().call_later(0.2, me.switch)
        me.parent.switch()
        out = b"resumed"
    else:
        out = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
