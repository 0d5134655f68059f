"""Fixture for tests/e2e/test_uwsgi_compat.py and test_websocket.py: uWSGI's async API."""
import asyncio
import json
import os
import socket
import time

import greenlet

try:
    import uwsgi
    IMPORT = "ok"
except ImportError as e:
    uwsgi = None
    IMPORT = "ImportError: %s" % e

if uwsgi is not None:
    try:
        uwsgi.suspend()
        OUTSIDE = "no error"
    except RuntimeError as e:
        OUTSIDE = str(e)


# Duplicates of websocket connections that /ws/echo_keep_dup keeps after their request ended,
# as an app handing the socket to other code would.
KEPT_DUPS = []


def decode(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def fd_read(timeout, send_after):
    a, b = socket.socketpair()
    try:
        loop = asyncio.get_event_loop()
        if send_after is not None:
            loop.call_later(send_after, b.send, b"x")
        start = time.monotonic()
        uwsgi.wait_fd_read(a.fileno(), timeout)
        uwsgi.suspend()
        fd = uwsgi.ready_fd()
        got = a.recv(1) if fd == a.fileno() else b""
        return json.dumps({"ready_is_fd": fd == a.fileno(), "ready": fd, "got": got.decode(),
                           "elapsed": time.monotonic() - start})
    finally:
        a.close()
        b.close()


def echo(environ, binary, keep_dup=False):
    # Blocking form: websocket_recv suspends only this core until a message arrives.
    uwsgi.websocket_handshake()  # key from the request's Sec-WebSocket-Key
    if keep_dup:
        KEPT_DUPS.append(os.dup(uwsgi.connection_fd()))
    while True:
        try:
            msg = uwsgi.websocket_recv()
        except OSError:
            return []
        if msg == b"__big__":
            uwsgi.websocket_send_binary(b"z" * 200000)
        elif binary:
            uwsgi.websocket_send_binary(msg)
        else:
            uwsgi.websocket_send(msg)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    out = None
    if path == "/":
        out = "ok"
    elif path == "/import":
        out = IMPORT
    elif uwsgi is None:
        out = "no uwsgi"
    elif path == "/outside":
        out = OUTSIDE
    elif path == "/fd_read":
        out = fd_read(5, 0.2)
    elif path == "/fd_timeout":
        out = fd_read(0.3, None)
    elif path == "/fd_write":
        a, b = socket.socketpair()
        uwsgi.wait_fd_write(a.fileno(), 2)
        uwsgi.suspend()
        out = json.dumps({"ready_is_fd": uwsgi.ready_fd() == a.fileno()})
        a.close()
        b.close()
    elif path == "/async_sleep":
        start = time.monotonic()
        uwsgi.async_sleep(0.5)
        uwsgi.suspend()
        out = json.dumps({"elapsed": time.monotonic() - start, "ready": uwsgi.ready_fd()})
    elif path == "/callback":
        me = greenlet.getcurrent()
        start = time.monotonic()
        asyncio.get_event_loop().call_later(0.3, me.switch, "resumed")
        uwsgi.suspend()
        out = json.dumps({"elapsed": time.monotonic() - start})
    elif path == "/info":
        out = json.dumps({"worker_id": uwsgi.worker_id(), "numproc": uwsgi.numproc,
                          "opt": {k: decode(v) for k, v in uwsgi.opt.items()},
                          "fd": uwsgi.connection_fd() > 2})
    elif path == "/ws/echo":
        return echo(environ, False)
    elif path == "/ws/echo_binary":
        return echo(environ, True)
    elif path == "/ws/echo_keep_dup":
        return echo(environ, False, keep_dup=True)
    elif path == "/ws/nokey":
        try:
            uwsgi.websocket_handshake()
            out = "no error"
        except OSError as e:
            out = "OSError: %s" % e
    elif path == "/ws/norecv":
        try:
            uwsgi.websocket_recv_nb()
            out = "no error"
        except OSError as e:
            out = "OSError: %s" % e
    body = (out if out is not None else "not found").encode()
    start_response("200 OK" if out is not None else "404 Not Found",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
