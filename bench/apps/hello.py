# examples/hello.py's 11 bytes of "Hello World", with a padding header that makes the whole
# response as long as nginx's `return 200 "Hello World"` (which adds "Server: nginx/1.22.1"
# and "Connection: keep-alive"): bench/run's hello workload compares like with like.
PAD = "x" * 31


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11"),
                              ("X-Bench-Pad", PAD)])
    return [b"Hello World"]
