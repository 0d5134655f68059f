"""HTTP/1.1 behaviour and the WSGI response protocol, over raw sockets (tests/apps/http_app.py)."""
import socket

import pytest

from conftest import APPS, wait_for

UVLOOP = True  # every read and write goes through the loop's watchers: both loops


@pytest.fixture(scope="module")
def close_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("closelog") / "close.log"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def srv(server_factory, close_log):
    return server_factory(APPS / "http_app.py", workers=1, cores=10,
                          env={"E2E_CLOSE_LOG": str(close_log)})


def wait_file(path, needle, timeout):
    return wait_for(lambda: needle in path.read_text(), timeout)


# ---- connection management ----

def test_keep_alive_serves_several_requests(srv):
    with srv.connect() as conn:
        for i in range(5):
            resp = conn.request("GET", "/?i=%d" % i)
            assert (resp.status, resp.body) == (200, b"hello")
            assert (resp.header("connection") or "").lower() != "close"
        assert not conn.closed_by_peer(timeout=0.3), "keep-alive connection closed early"


def test_http_10_closes_by_default(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/", version="HTTP/1.0")
        assert resp.status == 200 and resp.body == b"hello"
        assert resp.version in ("HTTP/1.0", "HTTP/1.1")
        assert conn.closed_by_peer(timeout=3), "HTTP/1.0 without keep-alive must be closed"


def test_http_10_keep_alive_on_request(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/", headers=[("Connection", "keep-alive")], version="HTTP/1.0")
        assert resp.status == 200
        assert (resp.header("connection") or "").lower() == "keep-alive"
        resp = conn.request("GET", "/list", headers=[("Connection", "keep-alive")],
                            version="HTTP/1.0")
        assert resp.status == 200 and resp.body == b"single item"


def test_connection_close_is_honoured(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/", headers=[("Connection", "close")])
        assert resp.status == 200
        assert (resp.header("connection") or "").lower() == "close"
        assert conn.closed_by_peer(timeout=3)


def test_pipelined_requests_answered_in_order(srv):
    with srv.connect() as conn:
        conn.send(b"GET /sleep?t=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies = [conn.read_response().body for _ in range(3)]
    assert bodies == [b"slept", b"hello", b"single item"]


# ---- request bodies ----

def test_chunked_request_body(srv):
    with srv.connect() as conn:
        resp = conn.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                            body=b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
        assert resp.status == 200
        assert resp.body == b"hello, world"
        assert resp.header("x-content-length") == "absent", "chunked: no CONTENT_LENGTH"
        assert conn.request("GET", "/").status == 200  # framing intact afterwards


def test_expect_100_continue(srv):
    with srv.connect(timeout=5) as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        version, status, _, _ = conn.read_head()  # before any body byte is sent
        assert status == 100, "expected '100 Continue' first, got %d" % status
        conn.send(b"ping")
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"ping")


def test_large_request_body(srv):
    body = bytes(range(256)) * 4096  # 1 MiB
    with srv.connect(timeout=20) as conn:
        resp = conn.request("POST", "/echo", body=body)
    assert resp.status == 200 and resp.body == body


# ---- response framing ----

def test_head_has_no_body(srv):
    with srv.connect() as conn:
        resp = conn.request("HEAD", "/big?n=1000")
        assert resp.status == 200
        assert resp.header("content-length") in ("1000", None)
        # if a body had been sent, it would now be read as the next status line
        resp = conn.request("GET", "/")
        assert (resp.status, resp.body) == (200, b"hello")


def test_chunked_response_without_content_length(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/nolength")
    assert resp.status == 200
    assert resp.header("transfer-encoding", "").lower() == "chunked"
    assert resp.header("content-length") is None
    assert resp.body == b"chunk-one;chunk-two;chunk-three"


def test_http_10_response_without_length_ends_with_close(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/nolength", version="HTTP/1.0")
        assert resp.status == 200
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"chunk-one;chunk-two;chunk-three"


def test_single_item_list_gets_content_length(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/list")
    assert resp.header("content-length") == "11"
    assert resp.header("transfer-encoding") is None
    assert resp.body == b"single item"


def test_write_callable(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/write")
        assert resp.status == 200
        assert resp.body == b"written-1;written-2;returned"
        assert conn.request("GET", "/").body == b"hello"


def test_large_response(srv):
    with srv.connect(timeout=20) as conn:
        resp = conn.request("GET", "/big?n=3000000")
    assert resp.status == 200 and resp.body == b"x" * 3000000


def test_file_wrapper(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/file")
    assert resp.status == 200
    assert resp.body == (APPS / "http_app.py").read_bytes()


def test_app_status_line_passes_through(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/status?s=418+I%27m+a+teapot")
    assert resp.status == 418 and resp.reason == "I'm a teapot"


# ---- application errors ----

def test_exception_before_headers_is_500(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/raise")
    assert resp.status == 500
    log = srv.wait_log("e2e boom before headers", timeout=15)
    assert "Traceback" in log and "RuntimeError: e2e boom before headers" in log
    srv.assert_healthy()


def test_exception_mid_stream_closes_connection(srv):
    with srv.connect() as conn:
        conn.send(b"GET /raise-mid HTTP/1.1\r\nHost: x\r\n\r\n")
        version, status, _, headers = conn.read_head()
        assert status == 200
        rest = conn.read_to_close()  # must end: the server closes the connection
    assert b"partial;" in rest
    assert not rest.endswith(b"0\r\n\r\n"), "a failed response must not look complete: %r" % rest
    assert "e2e boom mid-stream" in srv.wait_log("e2e boom mid-stream", timeout=15)
    srv.assert_healthy()


def test_newline_in_header_value_is_500(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/badheader")
        assert resp.status == 500
        assert b"must not be sent" not in resp.body
        assert resp.header("injected") is None
    srv.assert_healthy()


# ---- close() on the iterable ----

def test_close_called_after_complete_response(srv, close_log):
    with srv.connect() as conn:
        assert conn.request("GET", "/close?tag=complete").body == b"a;b;c"
    assert wait_file(close_log, "complete closed", timeout=3), close_log.read_text()
    assert "complete done" in close_log.read_text()


def test_close_called_when_client_disconnects(srv, close_log):
    conn = srv.connect()
    conn.send(b"GET /slow-close?tag=gone HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.read_head()[1] == 200
    conn._fill()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # reset: the app's next write fails
    assert wait_file(close_log, "gone closed", timeout=5), \
        "close() not called within 5 s of the disconnect: %r" % close_log.read_text()
    assert "gone done" not in close_log.read_text(), "the app ran to the end after a disconnect"
    srv.assert_healthy()
