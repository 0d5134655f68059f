"""Fixture app for the buffered-body e2e tests ([limits] buffer_body_bytes): reports what
wsgi.input gave it. One behaviour per path:

  /          "ok" (readiness)
  /fast      "fast", no body read
  /pid       the worker's pid
  /sha       reads wsgi.input to the end in 64 KiB pieces: JSON {len, sha256, content_length,
             seekable}
  /reread    reads it all, seek(0), reads it again: JSON {first, second (sha256 each), tell_end,
             tell_after_seek, seek_end (seek(0, 2)), partial (read(5) after seek(3))}
  /seek      seek(0) on the body as it is: JSON {error: exception type name, or null}
"""
import hashlib
import json
import os


def reply(start_response, body, status="200 OK"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def digest(stream):
    h = hashlib.sha256()
    n = 0
    while True:
        piece = stream.read(65536)
        if not piece:
            return n, h.hexdigest()
        n += len(piece)
        h.update(piece)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/fast":
        return reply(start_response, b"fast")
    if path == "/pid":
        return reply(start_response, str(os.getpid()).encode())
    if path == "/sha":
        n, sha = digest(stream)
        return reply(start_response, {"len": n, "sha256": sha,
                                      "content_length": environ.get("CONTENT_LENGTH"),
                                      "seekable": stream.seekable()})
    if path == "/reread":
        _, first = digest(stream)
        tell_end = stream.tell()
        stream.seek(0)
        tell_after_seek = stream.tell()
        _, second = digest(stream)
        seek_end = stream.seek(0, 2)
        stream.seek(3)
        partial = stream.read(5).decode("latin-1")
        return reply(start_response, {"first": first, "second": second, "tell_end": tell_end,
                                      "tell_after_seek": tell_after_seek, "seek_end": seek_end,
                                      "partial": partial})
    if path == "/seek":
        try:
            stream.seek(0)
            error = None
        except Exception as e:  # noqa: BLE001 - the type is the answer
            error = type(e).__name__
        digest(stream)
        return reply(start_response, {"error": error, "seekable": stream.seekable()})
    return reply(start_response, b"ok")
