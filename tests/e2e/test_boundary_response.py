"""The response side of the app boundary (SPEC.md, "Python side"): start_response copies the
header list, so what the app does to its list afterwards never reaches the wire; a 1xx final
status and a duplicate or non-decimal Content-Length give a logged 500. Every case reads the
raw bytes, checks that no injected line is anywhere in them, and that the same worker process
answers right after (a crash hidden by a respawn is a failure)."""
import socket
import threading
import urllib.parse

import pytest

from conftest import APPS


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(APPS / "boundary_response_app.py", workers=1, cores=16)


def exchange(srv, data, timeout=10):
    """Sends raw request bytes; returns every byte the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def get(path, close=True):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
            % (path, "Connection: close\r\n" if close else "")).encode()


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def __repr__(self):
        return "<Resp %d %r %r>" % (self.status, self.headers, self.body[:100])


def parse_responses(raw):
    """Splits raw bytes into responses, framing each by its own Content-Length or chunks."""
    out = []
    while raw:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        assert sep, "incomplete head: %r" % head
        lines = head.split(b"\r\n")
        version, code = lines[0].split(b" ")[:2]
        assert version == b"HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and b"\n" not in line and b"\r" not in line, line
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        resp = Resp(int(code), headers, b"")
        cls = resp.all("content-length")
        assert len(cls) <= 1, resp
        if 100 <= resp.status < 200 or resp.status in (204, 304):
            pass
        elif cls:
            n = int(cls[0])
            resp.body, raw = raw[:n], raw[n:]
        elif "chunked" in ",".join(resp.all("transfer-encoding")):
            body = b""
            while True:
                size, _, raw = raw.partition(b"\r\n")
                size = int(size, 16)
                body, raw = body + raw[:size], raw[size + 2:]
                if size == 0:
                    break
            resp.body = body
        else:
            resp.body, raw = raw, b""
        out.append(resp)
    return out


def worker_pid(srv):
    status, _, body = srv.request("GET", "/pid")
    assert status == 200
    return int(body)


def assert_clean(raw):
    lower = raw.lower()
    assert b"injected" not in lower, raw
    assert b"x-late" not in lower, raw


MUTATIONS = ["crlf", "int", "clear", "replace", "cl"]


@pytest.mark.parametrize("style", ["list", "gen", "write"])
@pytest.mark.parametrize("how", MUTATIONS)
def test_header_list_changed_after_start_response_has_no_effect(srv, how, style):
    pid = worker_pid(srv)
    token = "tok-%s-%s" % (how, style)
    raw = exchange(srv, get("/mutate?how=%s&style=%s&token=%s" % (how, style, token)))
    assert_clean(raw)
    assert b"12345" not in raw
    resps = parse_responses(raw)
    assert len(resps) == 1, resps
    r = resps[0]
    assert r.status == 200, r
    assert r.all("x-token") == [token], r
    assert r.all("content-type") == ["text/plain"], r
    assert r.body == token.encode(), r
    if style == "list":  # the length is known: one Content-Length, the server's
        assert r.all("content-length") == [str(len(token))], r
    assert worker_pid(srv) == pid, "the worker died and was replaced"


INFORMATIONAL = ["100 Continue", "101 Switching Protocols", "103 Early Hints"]


@pytest.mark.parametrize("status", INFORMATIONAL)
def test_informational_final_status_is_a_500(srv, status):
    pid = worker_pid(srv)
    # A second request pipelined behind: it must never be answered by the first's response.
    raw = exchange(srv, get("/status?s=%s" % urllib.parse.quote(status), close=False) +
                   get("/pid"))
    assert not raw.startswith(b"HTTP/1.1 1") and b"\r\nHTTP/1.1 1" not in raw, raw
    resps = parse_responses(raw)
    assert resps and resps[0].status == 500, resps
    assert b"informational body" not in raw
    for r in resps[1:]:  # if the connection stayed open, the next response is /pid's own
        assert r.status == 200 and r.body == str(pid).encode(), resps
    reason = "invalid status line '%s'" % status
    assert reason in srv.wait_log(reason)
    assert worker_pid(srv) == pid


BAD_LENGTHS = [
    ("different", "5|6"),
    ("same-twice", "5|5"),
    ("space-minus", " -5"),
    ("minus", "-5"),
    ("plus", "+5"),
    ("trailing-space", "5 "),
    ("leading-space", " 5"),
    ("hex", "0x5"),
    ("list", "5, 5"),
    ("empty", ""),
    ("over-int64", "18446744073709551615"),
    ("over-uint64", "99999999999999999999999"),
]


@pytest.mark.parametrize("value", [v for _, v in BAD_LENGTHS], ids=[i for i, _ in BAD_LENGTHS])
def test_bad_content_length_is_a_500(srv, value):
    pid = worker_pid(srv)
    before = srv.log_text().count("invalid Content-Length")
    raw = exchange(srv, get("/cl?v=%s" % urllib.parse.quote(value, safe="")))
    assert_clean(raw)
    resps = parse_responses(raw)
    assert len(resps) == 1 and resps[0].status == 500, resps
    assert b"hello" not in raw
    assert "invalid Content-Length" in srv.wait_log("invalid Content-Length", count=before + 1)
    assert worker_pid(srv) == pid


def test_good_content_length_is_sent_once(srv):
    raw = exchange(srv, get("/cl?v=5"))
    resps = parse_responses(raw)
    assert len(resps) == 1 and resps[0].status == 200, resps
    assert resps[0].all("content-length") == ["5"] and resps[0].body == b"hello"


def test_concurrent_clients_each_get_their_own_head_and_body(srv):
    """Requests that share one module-level header list, all in flight at once: each response
    carries the list as it was at its own start_response."""
    pid = worker_pid(srv)
    n = 8
    barrier = threading.Barrier(n)
    results = {}

    def client(i):
        token = "client-%d-token" % i
        barrier.wait()
        try:
            results[i] = (token, exchange(srv, get("/shared?s=0.3&token=%s" % token)))
        except OSError as e:
            results[i] = (token, repr(e).encode())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == n
    for i, (token, raw) in sorted(results.items()):
        assert_clean(raw)
        resps = parse_responses(raw)
        assert len(resps) == 1, (i, raw)
        r = resps[0]
        assert r.status == 200, (i, r)
        assert r.all("x-token") == [token], (i, r)
        assert r.body == token.encode(), (i, r)
        others = [b"client-%d-token" % j for j in range(n) if j != i]
        assert not any(o in raw for o in others), (i, raw)
    assert worker_pid(srv) == pid
