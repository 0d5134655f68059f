"""Fixture app: echoes the WSGI environ (or what wsgi.input gives) as JSON."""
import json
import os


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple):
        return list(value)
    return repr(value)


def _read_input(mode, inp):
    if mode == "read":
        return inp.read().decode("latin-1")
    if mode == "read-sized":
        parts = []
        while True:
            chunk = inp.read(5)
            if not chunk:
                return parts
            parts.append(chunk.decode("latin-1"))
    if mode == "readline":
        lines = []
        while True:
            line = inp.readline()
            if not line:
                return lines
            lines.append(line.decode("latin-1"))
    if mode == "readlines":
        return [line.decode("latin-1") for line in inp.readlines()]
    if mode == "iter":
        return [line.decode("latin-1") for line in inp]
    raise ValueError(mode)


# /kept/...: values kept alive across requests, so that a str the server shares between
# requests is told from an equal new one by its id().
KEPT = []
SHARED_KEYS = ("PATH_INFO", "QUERY_STRING", "REQUEST_URI", "REMOTE_ADDR", "HTTP_HOST")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/kept/"):
        KEPT.append([environ[k] for k in SHARED_KEYS])
        result = {k: [environ[k], id(environ[k])] for k in SHARED_KEYS}
    elif path.startswith("/input/"):
        result = _read_input(path[len("/input/"):], environ["wsgi.input"])
    else:
        result = {k: _jsonable(v) for k, v in environ.items()}
        result["has_input_read"] = callable(getattr(environ["wsgi.input"], "read", None))
        result["has_errors_write"] = callable(getattr(environ["wsgi.errors"], "write", None))
        result["pid"] = os.getpid()  # with aiowsgi.core: which core of which worker served
    body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
