"""Request-side boundaries: what a client (or a uwsgi-protocol peer) can send that the server
must refuse or bound, each answered with the right status on the wire while the same worker
keeps serving. Repeated header fields (joined in linear time), the header field count limit,
absolute-form targets, chunk-size bounds, Expect on HTTP/1.0, a partial pipelined head held
to header_timeout, slow-drip bodies (body_timeout), server-owned environ keys over the uwsgi
protocol, and the websocket opening handshake's checks."""
import base64
import json
import os
import socket
import time

import pytest

from conftest import APPS, RawConnection, free_port
from wire_clients import uwsgi_packet

HEADER_TIMEOUT = 1.0
APP = APPS / "boundary_protocol_app.py"


def uwsgi_request(port, variables, body=b""):
    """One uwsgi-protocol request; returns (status, headers, body) of the HTTP/1.x answer."""
    conn = RawConnection(port)
    try:
        conn.send(uwsgi_packet(variables) + body)
        resp = conn.read_response()
        return resp.status, dict(resp.headers), resp.body
    finally:
        conn.close()


def base_vars(path="/env", method="GET"):
    return [("REQUEST_METHOD", method), ("PATH_INFO", path), ("REQUEST_URI", path),
            ("QUERY_STRING", ""), ("SERVER_PROTOCOL", "HTTP/1.1"), ("SERVER_NAME", "x"),
            ("SERVER_PORT", "80"), ("HTTP_HOST", "x")]


def worker_pid(server):
    status, _, body = server.request("GET", "/pid")
    assert status == 200
    return json.loads(body)["pid"]


def raw_status(port, data, timeout=10):
    """Sends `data` on a fresh connection and returns the first response's status."""
    with RawConnection(port, timeout) as conn:
        conn.send(data)
        return conn.read_response().status


@pytest.fixture(scope="module")
def srv(server_factory):
    """Settings every aiowsgi version understands: one worker, so "the same pid" means the
    worker survived."""
    s = server_factory(APP, workers=1, cores=4,
                       limits={"header_timeout": HEADER_TIMEOUT, "keepalive_timeout": 30,
                               "max_body_bytes": 1 << 20},
                       server={"uwsgi_listen": ["127.0.0.1:%d" % free_port()]})
    s.uwsgi_port = int(s.server_extra["uwsgi_listen"][0].rsplit(":", 1)[1])
    s.first_pid = worker_pid(s)
    return s


@pytest.fixture(scope="module")
def tight(server_factory):
    """The request limits this module is about, set low."""
    s = server_factory(APP, workers=1, cores=4,
                       limits={"max_header_fields": 20, "body_timeout": 1.5,
                               "header_timeout": 5, "keepalive_timeout": 30},
                       server={"uwsgi_listen": ["127.0.0.1:%d" % free_port()]})
    s.uwsgi_port = int(s.server_extra["uwsgi_listen"][0].rsplit(":", 1)[1])
    s.first_pid = worker_pid(s)
    return s


@pytest.fixture(scope="module")
def roomy(server_factory):
    """Large heads allowed: thousands of repeated fields."""
    s = server_factory(APP, workers=1, cores=2,
                       limits={"max_header_fields": 32768, "max_header_bytes": 1 << 20})
    s.first_pid = worker_pid(s)
    return s


def same_worker(server):
    assert worker_pid(server) == server.first_pid, "the worker was replaced"


# ---- repeated fields -------------------------------------------------------------------------

def test_repeated_fields_are_joined_in_order_case_insensitively(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/env", headers=[("X-Rep", "1"), ("Accept", "a"),
                                                    ("x-rep", "2"), ("X-REP", "3"),
                                                    ("accept", "b")])
        env = json.loads(resp.body)
    assert env["HTTP_X_REP"] == "1, 2, 3"
    assert env["HTTP_ACCEPT"] == "a, b"
    same_worker(srv)


def test_thousands_of_repeats_are_joined_in_linear_time(roomy):
    # ~27,000 fields of 36 bytes in a ~1 MiB head: a join per repeat copies the growing value
    # each time (gigabytes, seconds of blocked loop); a linear join takes milliseconds.
    n = 27000
    values = ["v%026d" % i for i in range(n)]
    head = "GET /env HTTP/1.1\r\nHost: x\r\n" + "".join(
        "%s: %s\r\n" % ("X-Rep" if i % 2 else "x-rep", v) for i, v in enumerate(values))
    data = (head + "\r\n").encode()
    assert len(data) < 1 << 20
    with RawConnection(roomy.port, timeout=60) as conn:
        t0 = time.monotonic()
        conn.send(data)
        resp = conn.read_response()
        elapsed = time.monotonic() - t0
    assert resp.status == 200
    env = json.loads(resp.body)
    assert env["HTTP_X_REP"] == ", ".join(values)
    assert elapsed < 3.0, "joining %d repeated fields took %.2f s" % (n, elapsed)
    same_worker(roomy)


# ---- header field count ----------------------------------------------------------------------

def head_with_fields(n, path="/env"):
    # Host is one of the n fields.
    return ("GET %s HTTP/1.1\r\nHost: x\r\n" % path +
            "".join("X-F%d: v\r\n" % i for i in range(n - 1)) + "\r\n").encode()


def test_more_header_fields_than_the_limit_is_431(tight):
    assert raw_status(tight.port, head_with_fields(20)) == 200
    assert raw_status(tight.port, head_with_fields(21)) == 431
    same_worker(tight)


def test_default_header_field_limit_is_100(srv):
    assert raw_status(srv.port, head_with_fields(100)) == 200
    assert raw_status(srv.port, head_with_fields(101)) == 431
    same_worker(srv)


def test_more_http_vars_than_the_limit_is_431_over_uwsgi(tight):
    fields = [("HTTP_X_F%d" % i, "v") for i in range(19)]  # plus HTTP_HOST: 20
    status, _, _ = uwsgi_request(tight.uwsgi_port, base_vars() + fields)
    assert status == 200
    status, _, _ = uwsgi_request(tight.uwsgi_port, base_vars() + fields + [("HTTP_X_MORE", "v")])
    assert status == 431
    same_worker(tight)


# ---- absolute-form targets -------------------------------------------------------------------

@pytest.mark.parametrize("target,path,query,host", [
    ("http://example.com/env?q=1", "/env", "q=1", "example.com"),
    ("https://example.com:8443/env", "/env", "", "example.com:8443"),
    ("HTTP://Example.com/env?a=b&c", "/env", "a=b&c", "Example.com"),
])
def test_absolute_form_target_is_served(srv, target, path, query, host):
    with srv.connect() as conn:
        conn.send(("GET %s HTTP/1.1\r\nHost: other.invalid\r\n\r\n" % target).encode())
        resp = conn.read_response()
    assert resp.status == 200, resp
    env = json.loads(resp.body)
    assert env["PATH_INFO"] == path
    assert env["QUERY_STRING"] == query
    assert env["HTTP_HOST"] == host
    assert env["REQUEST_URI"] == target
    same_worker(srv)


@pytest.mark.parametrize("target", ["ftp://example.com/env", "http:///env",
                                    "http://user@example.com/env", "example.com/env", "*"])
def test_malformed_target_forms_are_400(srv, target):
    assert raw_status(srv.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode()) == 400
    same_worker(srv)


# ---- chunk sizes -----------------------------------------------------------------------------

CHUNKED_HEAD = b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunk_size_over_64_bits_is_400_not_413(srv):
    # max_body_bytes is set: the size passes it long before it overflows, yet it is malformed.
    assert raw_status(srv.port, CHUNKED_HEAD + b"1" + b"0" * 16 + b"\r\n") == 400
    assert raw_status(srv.port, CHUNKED_HEAD + b"f" * 40 + b"\r\n") == 400
    same_worker(srv)


def test_chunk_size_leading_zeros_are_bounded(srv):
    padded = CHUNKED_HEAD + b"0" * 31 + b"5\r\nhello\r\n0\r\n\r\n"
    with RawConnection(srv.port) as conn:
        conn.send(padded)
        resp = conn.read_response()
    assert resp.status == 200 and json.loads(resp.body)["body"] == "hello"
    endless = CHUNKED_HEAD + b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"
    assert raw_status(srv.port, endless) == 400
    same_worker(srv)


# ---- Expect: 100-continue --------------------------------------------------------------------

def expect_continue_exchange(port, version):
    """Sends a head with Expect: 100-continue, waits, then the body. Returns what arrived
    before the body was sent, and the final response."""
    with RawConnection(port) as conn:
        conn.send(("POST /read %s\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
                   "\r\n" % version).encode())
        conn.sock.settimeout(1.0)
        early = b""
        try:
            early = conn.sock.recv(4096)
        except socket.timeout:
            pass
        conn.sock.settimeout(10)
        conn.buf = early
        conn.send(b"hello")
        return early, conn.read_response(skip_informational=True)


def test_expect_100_continue_is_ignored_on_http_10(srv):
    early, resp = expect_continue_exchange(srv.port, "HTTP/1.0")
    assert not early.startswith(b"HTTP/1.1 100"), early
    assert resp.status == 200 and json.loads(resp.body)["body"] == "hello"
    # HTTP/1.1 still gets its interim response.
    early, resp = expect_continue_exchange(srv.port, "HTTP/1.1")
    assert early.startswith(b"HTTP/1.1 100 Continue"), early
    assert resp.status == 200
    same_worker(srv)


# ---- a partial pipelined head ----------------------------------------------------------------

def test_partial_pipelined_head_gets_408_at_header_timeout(srv):
    # keepalive_timeout is 30 s: only header_timeout (1 s) can end this connection soon.
    with RawConnection(srv.port, timeout=15) as conn:
        t0 = time.monotonic()
        conn.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
        assert conn.read_response().status == 200
        conn.sock.settimeout(15)
        resp = conn.read_response()  # the server's next word on this connection
        elapsed = time.monotonic() - t0
        assert resp.status == 408, resp
        assert conn.closed_by_peer(timeout=5), "must close after the 408"
    assert elapsed < 10, "408 after %.1f s: keepalive_timeout, not header_timeout" % elapsed
    same_worker(srv)


# ---- slow-drip bodies ------------------------------------------------------------------------

def test_slow_drip_body_gets_408(tight):
    with RawConnection(tight.port, timeout=20) as conn:
        conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        t0 = time.monotonic()
        conn.sock.settimeout(0.3)
        got = b""
        while time.monotonic() - t0 < 15 and b"\r\n\r\n" not in got:
            try:
                conn.send(b"x")  # one byte per 0.3 s: about 3 bytes a second
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                data = conn.sock.recv(4096)
                if not data:
                    break
                got += data
            except socket.timeout:
                pass
        elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408"), got[:100]
    # body_timeout is 1.5 s; the tick that notices it runs four times a second.
    assert elapsed < 8, elapsed
    assert "timed out reading the request body" in tight.wait_log("timed out reading")
    same_worker(tight)


def test_body_after_a_pause_shorter_than_body_timeout_is_served(tight):
    with RawConnection(tight.port) as conn:
        conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
        time.sleep(0.5)
        conn.send(b"llo")
        resp = conn.read_response()
    assert resp.status == 200 and json.loads(resp.body)["body"] == "hello"
    same_worker(tight)


# ---- uwsgi vars cannot replace the server's environ entries ----------------------------------

def test_uwsgi_vars_cannot_overwrite_server_keys(srv):
    hostile = [("wsgi.input", "x"), ("wsgi.url_scheme", "gopher"), ("aiowsgi.core", "99"),
               ("wsgi.errors", "x"), ("wsgi.multithread", "yes"), ("aiowsgi.anything", "x"),
               ("X-Dashed", "x"), ("HTTP_X_OK", "fine")]
    status, _, body = uwsgi_request(srv.uwsgi_port, base_vars() + hostile)
    assert status == 200
    env = json.loads(body)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input"] != "x" and env["input_has_read"] is True
    assert isinstance(env["aiowsgi.core"], int)
    assert env["wsgi.errors"] != "x"
    assert env["wsgi.multithread"] is False
    assert "aiowsgi.anything" not in env and "X-Dashed" not in env
    assert env["HTTP_X_OK"] == "fine"
    # A body still reads from the real wsgi.input.
    status, _, body = uwsgi_request(
        srv.uwsgi_port, base_vars("/read", "POST") + [("CONTENT_LENGTH", "5"),
                                                      ("wsgi.input", "x")], b"hello")
    assert status == 200 and json.loads(body)["body"] == "hello"
    same_worker(srv)


# ---- websocket opening handshake -------------------------------------------------------------

def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_head(method="GET", version="HTTP/1.1", upgrade="websocket", connection="Upgrade",
            ws_version="13", key=None):
    lines = ["%s /ws %s" % (method, version), "Host: x"]
    if upgrade is not None:
        lines.append("Upgrade: " + upgrade)
    if connection is not None:
        lines.append("Connection: " + connection)
    if ws_version is not None:
        lines.append("Sec-WebSocket-Version: " + ws_version)
    lines.append("Sec-WebSocket-Key: " + (key if key is not None else ws_key()))
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_valid_websocket_handshake_upgrades(srv):
    with RawConnection(srv.port) as conn:
        conn.send(ws_head(connection="keep-alive, Upgrade"))
        _, status, _, _ = conn.read_head()
        assert status == 101


@pytest.mark.parametrize("kwargs", [
    {"method": "POST"},
    {"version": "HTTP/1.0"},
    {"upgrade": None},
    {"upgrade": "h2c"},
    {"connection": "keep-alive"},
    {"ws_version": None},
    {"ws_version": "8"},
    {"key": "c2hvcnQ="},
    {"key": "not base64 at all!!!!!!!"},
], ids=lambda k: ",".join("%s=%s" % kv for kv in k.items()))
def test_invalid_websocket_handshake_is_400(srv, kwargs):
    with RawConnection(srv.port) as conn:
        conn.send(ws_head(**kwargs))
        resp = conn.read_response()
    assert resp.status == 400, resp
    same_worker(srv)


def test_websocket_handshake_checks_over_uwsgi(srv):
    ws = [("HTTP_UPGRADE", "websocket"), ("HTTP_CONNECTION", "Upgrade"),
          ("HTTP_SEC_WEBSOCKET_KEY", ws_key())]
    conn = RawConnection(srv.uwsgi_port)
    try:
        conn.send(uwsgi_packet(base_vars("/ws") + ws + [("HTTP_SEC_WEBSOCKET_VERSION", "13")]))
        _, status, _, _ = conn.read_head()
        assert status == 101
    finally:
        conn.close()
    status, _, _ = uwsgi_request(srv.uwsgi_port, base_vars("/ws") + ws)  # no version
    assert status == 400
    same_worker(srv)
