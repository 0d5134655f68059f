"""HTTP/1.1 conformance over raw sockets (tests/apps/http_app.py): optional whitespace in the
fields the server reads, extension methods, the Date of responses the server makes itself,
and Host validation (RFC 9110, RFC 9112)."""
import calendar
import re
import time

import pytest

from conftest import APPS

UVLOOP = True  # the request path is the same on both loops

# IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                         r"\d\d:\d\d:\d\d GMT")


@pytest.fixture(scope="module")
def srv(server_factory):
    # Small limits so that 408, 413 and 431 are cheap to provoke; header_timeout is still
    # generous for the requests that are meant to arrive whole.
    return server_factory(APPS / "http_app.py", workers=1, cores=4,
                          limits={"max_body_bytes": 64, "max_header_bytes": 4096,
                                  "header_timeout": 2})


def assert_dated(resp):
    """The response carries exactly one Date, an IMF-fixdate of about now."""
    dates = [v for k, v in resp.headers if k == "date"]
    assert len(dates) == 1, "want one Date field: %r" % (resp,)
    assert IMF_FIXDATE.fullmatch(dates[0]), dates[0]
    when = calendar.timegm(time.strptime(dates[0], "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(when - time.time()) < 600, dates[0]  # generous: only a wrong clock fails


def raw(srv, data, method="GET"):
    """Sends |data| on a fresh connection; the server's response and what follows it."""
    with srv.connect() as conn:
        conn.send(data)
        resp = conn.read_response(method)
        rest = conn.read_to_close()
    return resp, rest


# ---- item 1: OWS around list elements and values ----

def test_connection_close_followed_by_tab_closes_and_skips_pipelined(srv):
    # RFC 9112 9.6: after "close" the server closes and processes no further request.
    resp, rest = raw(srv, b"PUT /url HTTP/1.1\r\nHost: example.com\r\nConnection: close\t\r\n"
                          b"\r\n"
                          b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert resp.status == 404  # the app's answer for /url
    assert (resp.header("connection") or "").lower() == "close"
    assert rest == b"", "pipelined request after Connection: close was served: %r" % rest


def test_tab_padded_framing_fields_frame_the_body(srv):
    with srv.connect() as conn:
        conn.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length:\t5\t\r\n\r\nhello")
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"hello")
        conn.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\t\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"abc")


# ---- item 2: extension methods ----

@pytest.mark.parametrize("method", ["QUERY", "PURGE", "MKCALENDAR", "FOO-BAR", "get"])
def test_extension_method_reaches_the_app_with_its_body(srv, method):
    with srv.connect() as conn:
        resp = conn.request(method, "/echo", body=b"hello")
        assert (resp.status, resp.body) == (200, b"hello")
        assert resp.header("x-method") == method
        conn.send(method.encode() + b" /echo HTTP/1.1\r\nHost: h\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n\r\n")
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"world")
        assert resp.header("x-method") == method


@pytest.mark.parametrize("method", [b"GE(T", b"G@T", b"GET,POST"])
def test_method_that_is_not_a_token_is_400(srv, method):
    resp, _ = raw(srv, method + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert resp.status == 400
    assert_dated(resp)
    srv.assert_healthy()


# ---- item 3: Date on every response the server makes itself ----

@pytest.mark.parametrize("data,status", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nBad Field: x\r\n\r\n", 400, id="malformed"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, id="version"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                 id="coding"),
    pytest.param(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", 413,
                 id="body-limit"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431,
                 id="head-limit"),
    pytest.param(b"GET /raise HTTP/1.1\r\nHost: h\r\n\r\n", 500, id="app-exception"),
])
def test_server_made_error_has_date(srv, data, status):
    resp, _ = raw(srv, data)
    assert resp.status == status
    assert_dated(resp)


def test_header_timeout_408_has_date(srv):
    with srv.connect() as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: h\r\n")  # never finished: 408 after header_timeout
        resp = conn.read_response()
    assert resp.status == 408
    assert_dated(resp)


# ---- item 4: Host ----

@pytest.mark.parametrize("host", [b"###", b"a b", b"[::1", b"a:b"])
def test_invalid_host_is_400(srv, host):
    resp, rest = raw(srv, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert resp.status == 400
    assert_dated(resp)
    assert rest == b""


@pytest.mark.parametrize("host", [b"example.com", b"127.0.0.1:8080", b"[::1]:80",
                                  b"xn--bcher-kva.example", b""])
def test_valid_host_is_served(srv, host):
    resp, _ = raw(srv, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert (resp.status, resp.body) == (200, b"hello")
