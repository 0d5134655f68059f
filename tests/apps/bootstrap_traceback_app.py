"""Fixture for tests/e2e/test_python_files.py: errors raised inside the Python halves of the
built-in aiowsgi and uwsgi modules, uncaught (the server logs the traceback) or formatted by
the app itself."""
import json
import traceback

import aiowsgi
import uwsgi


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/await_not_awaitable":
        aiowsgi.await_(42)  # TypeError raised in await_, from aiowsgi_bootstrap.py
    elif path == "/wait_on_no_fd":
        uwsgi.wait_fd_read(object())  # AttributeError in _fileno, from uwsgi_bootstrap.py
    if path == "/formatted":
        try:
            uwsgi.wait_fd_read(object())
            body = b"no error"
        except AttributeError:
            body = traceback.format_exc().encode()
    elif path == "/module_attrs":
        body = json.dumps({m.__name__: {"doc": m.__doc__, "file": hasattr(m, "__file__"),
                                        "builtins": "__builtins__" in vars(m)}
                           for m in (aiowsgi, uwsgi)}).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
