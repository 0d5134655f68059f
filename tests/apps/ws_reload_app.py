"""Fixture for tests/e2e/test_websocket_reload.py: websockets held across a reload or stop, in
the three ways an app waits for its client, and a plain request that takes its time."""
import asyncio
import os
import time

import greenlet
import uwsgi


def after_close(kind, error):
    # What the app saw, and what a send after it sees, for the test to read in the log.
    try:
        uwsgi.websocket_send(b"too late")
        late = "no error"
    except OSError as e:
        late = str(e)
    print("%s ended: %s | send after: %s" % (kind, error, late), flush=True)


def blocking_echo():
    """websocket_recv(): the core waits inside the server."""
    uwsgi.websocket_handshake()
    while True:
        try:
            msg = uwsgi.websocket_recv()
        except OSError as e:
            after_close("blocking", e)
            return []
        uwsgi.websocket_send(msg)


def reader_echo():
    """websocket_recv_nb() when the app's own reader on the socket wakes the core."""
    uwsgi.websocket_handshake()
    me = greenlet.getcurrent()
    loop = asyncio.get_event_loop()
    fd = uwsgi.connection_fd()
    state = {"waiting": False}

    def on_readable():
        if state["waiting"]:
            state["waiting"] = False
            me.switch()

    loop.add_reader(fd, on_readable)
    try:
        while True:
            try:
                msg = uwsgi.websocket_recv_nb()
            except OSError as e:
                after_close("reader", e)
                return []
            if msg:
                uwsgi.websocket_send(msg)
                continue
            state["waiting"] = True
            me.parent.switch()
    finally:
        loop.remove_reader(fd)


def deaf():
    """Answers one message, then waits for something else entirely and never reads again:
    the server's close frame must not depend on the app."""
    uwsgi.websocket_handshake()
    uwsgi.websocket_send(uwsgi.websocket_recv())
    uwsgi.async_sleep(3600)
    uwsgi.suspend()
    return []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ws/blocking":
        return blocking_echo()
    if path == "/ws/reader":
        return reader_echo()
    if path == "/ws/deaf":
        return deaf()
    if path == "/slow":
        # A plain request suspended in the server's loop: the drain must wait for it.
        start = time.monotonic()
        uwsgi.async_sleep(float(environ.get("QUERY_STRING") or "3"))
        uwsgi.suspend()
        body = ("slept %.1f s in pid %d" % (time.monotonic() - start, os.getpid())).encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
