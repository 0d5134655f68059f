"""Malformed and oversized requests get the exact status of SPEC.md "HTTP edge cases",
and the server keeps serving afterwards."""
import socket
import time

import pytest

from conftest import APPS

UVLOOP = True  # header and keep-alive timeouts are loop timers: both loops

LIMITS = {"max_header_bytes": 4096, "max_body_bytes": 1000, "header_timeout": 1,
          "keepalive_timeout": 1}


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=10, limits=LIMITS)


def status_of(server, raw, timeout=5):
    with server.connect(timeout=timeout) as conn:
        conn.send(raw)
        try:
            return conn.read_response().status
        except (EOFError, ConnectionResetError) as e:
            raise AssertionError("no response to %r: %s" % (raw[:80], e))


CASES = {
    "malformed request line": (b"GARBAGE\r\n\r\n", 400),
    "request line without version": (b"GET /\r\nHost: x\r\n\r\n", 400),
    "NUL in header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "bare CR in header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n", 400),
    "head over max_header_bytes": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n", 431),
    "body over max_body_bytes (Content-Length)": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"b" * 5000, 413),
    "body over max_body_bytes (chunked)": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"200\r\n" + b"c" * 512 + b"\r\n") * 4 + b"0\r\n\r\n", 413),
    "Content-Length with Transfer-Encoding": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "two different Content-Lengths": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    "negative Content-Length": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", 400),
    "non-numeric Content-Length": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    "bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400),
    "chunk without CRLF": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
        400),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_request_status(srv, name):
    raw, expected = CASES[name]
    got = status_of(srv, raw)
    assert got == expected, "%s: expected %d, got %d" % (name, expected, got)
    srv.assert_healthy()


def test_body_within_limit_is_accepted(srv):
    with srv.connect() as conn:
        resp = conn.request("POST", "/echo", body=b"k" * 1000)
    assert resp.status == 200 and len(resp.body) == 1000


def test_head_not_complete_in_time_is_408(srv):
    with srv.connect(timeout=5) as conn:
        start = time.monotonic()
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        resp = conn.read_response()
        elapsed = time.monotonic() - start
        assert resp.status == 408, resp
        assert 0.8 <= elapsed < 3.5, "header_timeout = 1 fired after %.2f s" % elapsed
        assert conn.closed_by_peer(timeout=2), "must close after the 408"
    srv.assert_healthy()


def test_idle_keep_alive_connection_is_closed(srv):
    with srv.connect(timeout=5) as conn:
        assert conn.request("GET", "/").status == 200
        start = time.monotonic()
        assert conn.closed_by_peer(timeout=4), "idle connection not closed (keepalive_timeout = 1)"
        elapsed = time.monotonic() - start
        assert 0.8 <= elapsed < 3.5, elapsed
    srv.assert_healthy()


def test_silent_connection_is_closed(srv):
    # A client that connects and sends nothing must not hold a core forever.
    with srv.connect(timeout=5) as conn:
        assert conn.closed_by_peer(timeout=4)
    srv.assert_healthy()


def test_abrupt_disconnect_mid_body(srv):
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n" + b"d" * 100)
    sock.close()
    srv.assert_healthy()
