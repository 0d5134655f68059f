"""Fixture app for tests/e2e/test_tls.py: what the environ says of TLS, an echo, a big body."""
import json
import os

KEYS = ("wsgi.url_scheme", "HTTPS", "SSL_CLIENT_S_DN", "SSL_CLIENT_VERIFY", "SSL_CLIENT_CERT")
BIG = b"0123456789abcdef" * 16384  # 256 KiB: many TLS records
# The same bytes as a file, for wsgi.file_wrapper (sendfile on plain sockets, records over
# TLS), in the server's working folder (the test's temporary folder).
BIG_FILE = os.path.abspath("tls-app-big.bin")
with open(BIG_FILE, "wb") as f:
    f.write(BIG)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        body = json.dumps({k: environ.get(k) for k in KEYS}).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/pid":  # which worker answered (session resumption across workers)
        body = str(os.getpid()).encode()
    elif path == "/big":
        body = BIG
    elif path == "/file":
        start_response("200 OK", [("Content-Length", str(len(BIG)))])
        return environ["wsgi.file_wrapper"](open(BIG_FILE, "rb"))
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
