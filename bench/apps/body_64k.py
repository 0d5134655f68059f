# 64 KiB from WSGI in one bytes object: the counterpart of nginx sending a 64 KiB static file
# (bench/run's 64k workload).
BODY = b"x" * 65536


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
