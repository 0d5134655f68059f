"""A websocket chat on aiowsgi, in the style of uWSGI's tests/websockets_chat_asyncio.py.

uWSGI's version relays messages through redis; here every connected client has an
asyncio.Queue and a message is put on all of them. Each client is one request: its core
suspends (greenlet.getcurrent().parent.switch()) until the loop wakes it, either because the
client sent something (a reader on uwsgi.connection_fd()) or because its queue has a message.
Only that core waits; the loop and the other clients go on.

Run: aiowsgi-master --http 127.0.0.1:9090 --wsgi-file app.py --cores 100
then open http://127.0.0.1:9090/ in two browser tabs.
"""
import asyncio
import os
import time

import greenlet
import uwsgi

_HERE = os.path.dirname(os.path.abspath(__file__))

clients = set()  # one asyncio.Queue per connected websocket


def broadcast(text):
    for queue in clients:
        queue.put_nowait(text)


def page(environ, start_response):
    with open(os.path.join(_HERE, "index.html"), "rb") as f:
        html = f.read()
    scheme = "wss" if environ.get("wsgi.url_scheme") == "https" else "ws"
    url = "%s://%s/ws/" % (scheme, environ.get("HTTP_HOST", "127.0.0.1"))
    body = html.replace(b"{{WS_URL}}", url.encode())
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def chat(environ):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    me = greenlet.getcurrent()
    loop = asyncio.get_event_loop()
    queue = asyncio.Queue()
    state = {"waiting": False, "ws_readable": False}

    def wake(*_):
        # Only switch into the core while it waits below: a callback that fires after the
        # request ended must not resume a greenlet that has moved on.
        if state["waiting"]:
            state["waiting"] = False
            me.switch()

    def on_readable():
        state["ws_readable"] = True
        wake()

    def next_message():
        getter = asyncio.ensure_future(queue.get())
        getter.add_done_callback(wake)
        return getter

    fd = uwsgi.connection_fd()
    clients.add(queue)
    loop.add_reader(fd, on_readable)
    getter = next_message()
    broadcast("* someone joined (%d online)" % len(clients))
    try:
        while True:
            if getter.done():
                uwsgi.websocket_send(getter.result())
                getter = next_message()
            if state["ws_readable"]:
                state["ws_readable"] = False
                while True:
                    # b"" once no complete message is buffered; pings are answered inside;
                    # OSError when the client closes (or breaks the protocol).
                    msg = uwsgi.websocket_recv_nb()
                    if not msg:
                        break
                    broadcast("[%s] %s" % (time.strftime("%H:%M:%S"), msg.decode("utf-8")))
            if not getter.done():
                state["waiting"] = True
                me.parent.switch()
    except OSError:
        pass  # the client left
    finally:
        state["waiting"] = False
        clients.discard(queue)
        loop.remove_reader(fd)
        getter.cancel()
    broadcast("* someone left (%d online)" % len(clients))
    return []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        return page(environ, start_response)
    if path == "/ws/":
        return chat(environ)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
