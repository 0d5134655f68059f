"""Fixture app wrapped in wsgiref.validate.validator: any PEP 3333 violation by the server
shows up in the server log as an AssertionError or a WSGIWarning."""
import sys
import warnings
from wsgiref.validate import validator

# Make every WSGIWarning visible in the log, even repeated ones.
warnings.simplefilter("always")


def _app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.errors"].write("validator-app read %d bytes\n" % len(body))
        environ["wsgi.errors"].flush()
    elif environ.get("PATH_INFO") == "/lines":
        body = b"line one\nline two\n"
    else:
        body = b"validated " + environ.get("PATH_INFO", "").encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    if environ.get("PATH_INFO") == "/lines":
        return iter([b"line one\n", b"line two\n"])
    return [body]


application = validator(_app)
sys.stderr.write("validator app loaded\n")
