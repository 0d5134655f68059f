"""Fixture app for the request-side boundary tests: reports its environ and pid, reads bodies
and takes websocket handshakes, letting every server-raised error propagate (so the client
sees the status the server picks for it)."""
import json
import os

import uwsgi


def _reply(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/read":
        data = environ["wsgi.input"].read()  # a TimeoutError / OSError propagates
        return _reply(start_response, {"len": len(data), "body": data[:64].decode("latin-1"),
                                        "pid": os.getpid()})
    if path == "/ws":
        uwsgi.websocket_handshake()  # an OSError propagates: the client gets 400
        uwsgi.websocket_send(b"hello")
        return []
    if path == "/env":
        out = {}
        for k, v in environ.items():
            if isinstance(v, (str, int, bool)) or v is None:
                out[k] = v
            else:
                out[k] = "<%s>" % type(v).__name__
        out["input_has_read"] = callable(getattr(environ["wsgi.input"], "read", None))
        out["pid"] = os.getpid()
        return _reply(start_response, out)
    return _reply(start_response, {"pid": os.getpid(), "path": path})
