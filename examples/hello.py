# The smallest app: 11 bytes of "Hello World" (used by bench/ and as a smoke test).
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"Hello World"]
