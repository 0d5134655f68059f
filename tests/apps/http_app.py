"""Fixture app for the HTTP/1.1 and WSGI-protocol e2e tests: one behaviour per path.

E2E_CLOSE_LOG (env): file where iterables record "<tag> closed" / "<tag> done".
"""
import asyncio
import os
import urllib.parse

import greenlet

CLOSE_LOG = os.environ.get("E2E_CLOSE_LOG", "")


def suspend(seconds):
    """Suspends this request's greenlet for `seconds` on the worker's loop (seed idiom)."""
    me = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(seconds, me.switch)
    me.parent.switch()


def record(line):
    with open(CLOSE_LOG, "a") as f:
        f.write(line + "\n")


class Recording:
    """An iterable whose close() (and normal completion) is written to CLOSE_LOG."""

    def __init__(self, tag, chunks, delay=0.0):
        self.tag, self.chunks, self.delay = tag, chunks, delay

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i and self.delay:
                suspend(self.delay)
            yield chunk
        record(self.tag + " done")

    def close(self):
        record(self.tag + " closed")


def query(environ):
    return dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))


def plain(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ)
    if path == "/":
        return plain(start_response, b"hello")
    if path == "/list":  # single-item list, no Content-Length from the app
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"single item"]
    if path == "/nolength":  # a generator: the server cannot know the length
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (c for c in [b"chunk-one;", b"chunk-two;", b"chunk-three"])
    if path == "/write":  # the legacy write() callable, then an iterable
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-1;")
        write(b"written-2;")
        return [b"returned"]
    if path == "/echo":  # echoes the body; says what CONTENT_LENGTH was
        body = environ["wsgi.input"].read()
        return plain(start_response, body,
                     extra=[("X-Content-Length", environ.get("CONTENT_LENGTH", "absent")),
                            ("X-Method", environ["REQUEST_METHOD"])])
    if path == "/sleep":
        suspend(float(q.get("t", "1")))
        return plain(start_response, b"slept")
    if path == "/big":
        return plain(start_response, b"x" * int(q.get("n", "100000")))
    if path == "/raise":
        raise RuntimeError("e2e boom before headers")
    if path == "/raise-mid":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"partial;"
            raise RuntimeError("e2e boom mid-stream")
        return gen()
    if path == "/badheader":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\nInjected: b")])
        return [b"must not be sent"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recording(q["tag"], [b"a;", b"b;", b"c"])
    if path == "/slow-close":  # 100 chunks 0.1 s apart: ~10 s if the client stays
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Recording(q["tag"], [b"y" * 16384] * 100, delay=0.1)
    if path == "/file":
        f = open(os.path.abspath(__file__), "rb")
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/status":
        return plain(start_response, b"status", status=q.get("s", "200 OK"))
    return plain(start_response, b"Not Found", status="404 Not Found")
