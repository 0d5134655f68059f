"""Pipelined batches (TechEmpower plaintext style: many requests in one write): every request
gets its response, in order and framed as alone, while the server answers a batch in one write;
a request that suspends in the middle does not hold back the answers made before it, and
answers given without the app (errors) come after those of the requests before them."""
import time

import pytest

from conftest import APPS

UVLOOP = True  # the held answers are flushed from the loop's turn: both loops


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=10)


def get(path, method="GET", extra=b""):
    return method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def echo(body):
    return (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


def test_batch_of_sixteen_answered_in_order(srv):
    batch = [echo(b"req-%02d" % i) for i in range(16)]
    with srv.connect() as conn:
        conn.send(b"".join(batch))
        bodies = [conn.read_response().body for _ in range(16)]
        assert bodies == [b"req-%02d" % i for i in range(16)]
        # The connection stays usable after the batch.
        assert conn.request("GET", "/").body == b"hello"


def test_mixed_batch_keeps_each_framing(srv):
    # Content-Length, chunked, HEAD (no body bytes), a no-length list, a 404: all in one write.
    with srv.connect() as conn:
        conn.send(get("/") + get("/nolength") + get("/", "HEAD") + get("/list") +
                  get("/missing") + get("/write") + echo(b"last"))
        r = [conn.read_response(method=m) for m in
             ("GET", "GET", "HEAD", "GET", "GET", "GET", "GET")]
        assert [x.status for x in r] == [200, 200, 200, 200, 404, 200, 200]
        assert r[0].body == b"hello"
        assert r[1].body == b"chunk-one;chunk-two;chunk-three"
        assert r[1].header("transfer-encoding") == "chunked"
        assert r[2].body == b"" and r[2].header("content-length") == "5"
        assert r[3].body == b"single item"
        assert r[4].body == b"Not Found"
        assert r[5].body == b"written-1;written-2;returned"
        assert r[6].body == b"last"
        assert not conn.closed_by_peer(timeout=0.3)


def test_suspending_request_does_not_hold_back_earlier_answers(srv):
    with srv.connect() as conn:
        t0 = time.monotonic()
        conn.send(get("/") + get("/sleep?t=1") +
                  get("/list"))
        first = conn.read_response()
        t_first = time.monotonic() - t0
        second = conn.read_response()
        t_second = time.monotonic() - t0
        third = conn.read_response()
    assert (first.body, second.body, third.body) == (b"hello", b"slept", b"single item")
    assert t_first < 0.5, "the answer before the suspended request waited %.2f s" % t_first
    assert t_second >= 0.9


def test_connection_close_in_the_middle_ends_the_batch(srv):
    with srv.connect() as conn:
        conn.send(get("/") + get("/list", extra=b"Connection: close\r\n") + get("/"))
        first, second = conn.read_response(), conn.read_response()
        assert (first.body, second.body) == (b"hello", b"single item")
        assert (second.header("connection") or "").lower() == "close"
        assert conn.closed_by_peer(timeout=3)


def test_bad_request_after_answers_comes_after_them(srv):
    with srv.connect() as conn:
        conn.send(get("/") + echo(b"two") + b"NOT A REQUEST\r\n\r\n")
        r = [conn.read_response() for _ in range(3)]
        assert [x.status for x in r] == [200, 200, 400]
        assert [r[0].body, r[1].body] == [b"hello", b"two"]
        assert conn.closed_by_peer(timeout=3)


def test_many_connections_pipelining_at_once(srv):
    conns = [srv.connect() for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            c.send(b"".join(echo(b"c%d-r%d" % (i, k)) for k in range(16)))
        for i, c in enumerate(conns):
            assert [c.read_response().body for _ in range(16)] == [
                b"c%d-r%d" % (i, k) for k in range(16)]
    finally:
        for c in conns:
            c.close()
