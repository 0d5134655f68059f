"""Fixture app for the deployment tests (nginx in front, socket activation, sd_notify).

/            "Hello World"
/environ     the CGI part of the environ as JSON (str values), plus the worker's pid and
             the socket-activation / notify variables it inherited (none, if all is well)
/echo        POST: the body back, with the length the app read and CONTENT_LENGTH
/stream      three chunks 0.5 s apart (the request suspends its greenlet between them);
             X-Accel-Buffering: no lets nginx pass each chunk on at once
/suspend     the seed's suspended-request example (examples/seed/suspend.py) unchanged
"""
import asyncio
import importlib.util
import json
import os

import greenlet

_HERE = os.path.dirname(os.path.abspath(__file__))
_SEED = os.path.join(_HERE, "..", "..", "examples", "seed", "suspend.py")


def _load_seed_suspend():
    spec = importlib.util.spec_from_file_location("seed_suspend", _SEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.application


_suspend = _load_seed_suspend()


def _wait(seconds):
    me = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(seconds, me.switch)
    me.parent.switch()


def _environ(environ, start_response):
    out = {k: v for k, v in environ.items() if isinstance(v, str)}
    out["pid"] = os.getpid()
    out["inherited"] = {k: os.environ[k] for k in
                        ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
                        if k in os.environ}
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _echo(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(data))),
                              ("X-Read", str(len(data))),
                              ("X-Content-Length", environ.get("CONTENT_LENGTH", "-"))])
    return [data]


def _stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Accel-Buffering", "no")])
    for i in range(3):
        if i:
            _wait(0.5)
        yield b"chunk %d\n" % i


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
        return [b"Hello World"]
    if path == "/environ":
        return _environ(environ, start_response)
    if path == "/echo":
        return _echo(environ, start_response)
    if path == "/stream":
        return _stream(environ, start_response)
    if path == "/suspend":
        return _suspend(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"Not Found\n"]
