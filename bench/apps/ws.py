# bench/run's websocket workloads, one WSGI app for aiowsgi and uWSGI (bench/apps/ws_aiohttp.py
# is the same logic on aiohttp), through uWSGI's websocket API as the seed's asyncio engine
# offers it:
#   /ws/echo     websocket_recv / websocket_send, one message at a time (ws-echo, ws-idle)
#   /ws/bcast    a receiver: an asyncio.Queue of its own in `clients`; each message put there
#                is sent to its client (ws-broadcast)
#   /ws/trigger  each message received is put on every receiver's queue
#   anything else: 200 "ok" (bench/run's readiness probe)
# A core waits for its queue by driving the coroutine queue.get() itself from its greenlet
# (the greenlet counterpart of `await`, as the seed's suspended request does with a future):
# no Task per message, so what is measured is the server's path, not asyncio's Task machinery.
import asyncio

import greenlet
import uwsgi

clients = set()


def await_in_core(awaitable):
    """`await awaitable` from inside a core: suspends only this core until it is done."""
    me = greenlet.getcurrent()
    it = awaitable.__await__()
    try:
        fut = it.send(None)
        while True:
            fut.add_done_callback(lambda _f: me.switch())
            me.parent.switch()
            fut = it.send(None)
    except StopIteration as done:
        return done.value


def echo(environ):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    try:
        while True:
            uwsgi.websocket_send(uwsgi.websocket_recv())
    except OSError:
        return []  # the client left


def receiver(environ):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    queue = asyncio.Queue()
    clients.add(queue)
    try:
        while True:
            uwsgi.websocket_send(await_in_core(queue.get()))
    except OSError:
        return []
    finally:
        clients.discard(queue)


def trigger(environ):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    try:
        while True:
            msg = uwsgi.websocket_recv()
            for queue in clients:
                queue.put_nowait(msg)
    except OSError:
        return []


ROUTES = {"/ws/echo": echo, "/ws/bcast": receiver, "/ws/trigger": trigger}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is not None:
        return route(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
