"""Fixture app for tests/e2e/test_boundary_response.py: apps that get the response side of
WSGI wrong in the ways real apps do (SPEC.md, "Python side": start_response copies the header
list; a 1xx final status, a duplicate or non-decimal Content-Length -> 500, logged).

/pid answers the worker's pid, so a test knows the same process still serves.
"""
import asyncio
import os
import urllib.parse

import greenlet


def suspend(seconds):
    me = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(seconds, me.switch)
    me.parent.switch()


def ok(start_response, body=b"ok"):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# One module-level list that every /shared request fills in place: a bug real apps have.
SHARED = []


def mutate(headers, how):
    if how == "crlf":
        headers.append(("X-A", "a\r\nX-Injected: yes"))
    elif how == "int":
        headers.append(12345)
    elif how == "clear":
        headers.clear()
    elif how == "replace":
        headers[1] = ("X-Token", "replaced\r\nX-Injected: yes")
    elif how == "cl":
        headers.append(("Content-Length", "1"))
        headers.append(("Content-Length", " -5"))
    else:
        raise ValueError(how)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if path == "/":
        return ok(start_response)
    if path == "/pid":
        return ok(start_response, str(os.getpid()).encode())

    if path == "/mutate":
        # The header list changes after start_response: the copy taken then is what is sent.
        token = q["token"]
        headers = [("Content-Type", "text/plain"), ("X-Token", token)]
        write = start_response("200 OK", headers)
        mutate(headers, q["how"])
        body = token.encode()
        style = q.get("style", "list")
        if style == "gen":  # the head goes out at the first yield, later than the return
            def gen():
                suspend(0.01)
                mutate(headers, "crlf")
                yield body
            return gen()
        if style == "write":  # the head goes out with the first write()
            write(body)
            return []
        return [body]

    if path == "/status":
        # A 1xx as the final status: interim responses are the server's to send.
        start_response(q["s"], [("Content-Type", "text/plain")])
        return [b"informational body"]

    if path == "/cl":
        # Content-Length values exactly as the app wrote them (the query keeps spaces, '+').
        headers = [("Content-Type", "text/plain")]
        headers += [("Content-Length", v) for v in q["v"].split("|")]
        start_response("200 OK", headers)
        return [b"hello"]

    if path == "/shared":
        # Concurrent requests refill one shared list; each must get what it had at
        # start_response, whatever the others did to the list while it was suspended.
        token = q["token"]
        SHARED[:] = [("Content-Type", "text/plain"), ("X-Token", token)]
        start_response("200 OK", SHARED)
        suspend(float(q.get("s", "0.2")))
        SHARED.append(("X-Late", token))
        return [token.encode()]

    start_response("404 Not Found", [("Content-Length", "0")])
    return []
