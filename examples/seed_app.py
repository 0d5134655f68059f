"""The six asyncio-engine examples from the uWSGI docs, served by one WSGI app.

Each example lives unchanged in seed/<name>.py; this app routes /callback, /suspend,
/generator, /task, /future and /aiohttp to them and lists them at /.
Run: aiowsgi-master -c server.toml   (then open http://127.0.0.1:9090/)
"""
import importlib.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# path -> (file in seed/, what it shows)
EXAMPLES = {
    "/callback": ("callback.py", "a loop callback runs 2 s after the response (see the log)"),
    "/suspend": ("suspend.py", "the request suspends its greenlet for 2 s"),
    "/generator": ("generator.py", "two chunks, 2 s apart"),
    "/task": ("task.py", "an asyncio.Task wakes the request after 2 s"),
    "/future": ("future.py", "a coroutine returns its result through a Future"),
    "/aiohttp": ("aiohttp_client.py", "an aiohttp request made from a coroutine"),
}


def _load(filename):
    # Loaded by path under a private name: "future" or "task" must not shadow other modules.
    name = "seed_" + os.path.splitext(filename)[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, "seed", filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.application


_APPS = {path: _load(filename) for path, (filename, _) in EXAMPLES.items()}


def _index(environ, start_response):
    items = "".join(
        '<li><a href="%s">%s</a>: %s</li>\n' % (path, path, text)
        for path, (_, text) in EXAMPLES.items()
    )
    body = (
        "<!DOCTYPE html>\n<html><head><title>aiowsgi seed examples</title></head><body>\n"
        "<h1>aiowsgi seed examples</h1>\n<ul>\n%s</ul>\n</body></html>\n" % items
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _not_found(environ, start_response):
    body = b"Not Found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        return _index(environ, start_response)
    return _APPS.get(path.rstrip("/"), _not_found)(environ, start_response)
