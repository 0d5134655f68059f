"""Misbehaving apps: every WSGI-contract violation gets a clean 500 before
the headers are out, or a closed connection after them, plus a logged reason; the worker
keeps serving. An app that kills its own process (os._exit, a segfault) loses only the
requests in flight on that worker, which the master respawns."""
import threading
import time
import http.client

import pytest

from conftest import APPS, wait_for

UVLOOP = True  # misbehaving apps suspend, raise and block on the loop: both loops


@pytest.fixture(scope="module")
def srv(server_factory, tmp_path_factory):
    record = tmp_path_factory.mktemp("misbehaving-record") / "record.txt"
    record.write_text("")
    s = server_factory(APPS / "misbehaving_app.py", workers=2, cores=20,
                       env={"E2E_RECORD": str(record)}, stats_socket=True)
    s.record = record
    return s


# path -> the reason that must reach the log
BEFORE_HEADERS = [
    ("/no-start-response", "before start_response() was called"),
    ("/no-start-response-empty", "without calling start_response()"),
    ("/start-response-twice", "called again without exc_info"),
    ("/str-item", "yielded str, not bytes"),
    ("/bad-status?v=1", "invalid status line '200'"),
    ("/bad-status?v=2", "invalid status line 'OK 200'"),
    ("/bad-status?v=3", "invalid status line '99 Too Low'"),
    ("/bad-status?v=4", "invalid status line"),
    ("/bad-status?v=5", "invalid status line '2000 Long'"),
    ("/bad-status?v=6", "/bad-status?v=6"),
    ("/bad-header", "/bad-header"),
    ("/sys-exit", "SystemExit"),
]


@pytest.mark.parametrize("path,reason", BEFORE_HEADERS, ids=[p for p, _ in BEFORE_HEADERS])
def test_violation_before_headers_is_a_clean_500(srv, path, reason):
    with srv.connect() as conn:
        resp = conn.request("GET", path)
        assert resp.status == 500, resp
        assert resp.header("connection") == "close"
        assert b"injected" not in resp.body.lower()
        assert resp.header("x-injected") is None and resp.header("injected") is None
    text = srv.wait_log(reason)
    assert reason in text, "no logged reason %r for %s" % (reason, path)
    srv.assert_healthy()


def test_start_response_with_exc_info_replaces_the_head_before_it_is_sent(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/exc-info-replaces")
        assert (resp.status, resp.body) == (503, b"replaced")
        assert resp.header("x-second") == "2" and resp.header("x-first") is None
        # An invalid replacement raises in the app, and the head it replaced stands.
        resp = conn.request("GET", "/exc-info-bad-replacement")
        assert (resp.status, resp.body) == (200, b"first")
        assert resp.header("x-first") == "1"
        assert resp.header("x-bad") is None and resp.header("injected") is None
    srv.assert_healthy()


@pytest.mark.parametrize("path,reason", [("/int-item-later", "yielded int, not bytes"),
                                         ("/raise-mid", "iterable failed mid-stream")])
def test_violation_after_headers_closes_the_connection(srv, path, reason):
    """Chunked response already started: the server must not send the last chunk (which
    would make a truncated body look complete), only close."""
    with srv.connect() as conn:
        conn.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        version, status, _, headers = conn.read_head()
        assert status == 200
        rest = conn.read_to_close()  # returns only when the server closes
        assert b"0\r\n\r\n" not in rest, rest
    assert reason in srv.wait_log(reason)
    srv.assert_healthy()


def test_body_longer_than_content_length_is_cut(srv):
    with srv.connect() as conn:
        resp = conn.request("GET", "/longer-than-cl")
        assert resp.status == 200 and resp.body == b"01234"
        # Nothing after the declared length may leak into the stream: the next thing on the
        # connection is either its close or a clean response to the next request.
        try:
            resp2 = conn.request("GET", "/")
        except EOFError:
            assert conn.buf == b""
        else:
            assert resp2.status == 200 and resp2.body == b"ok"
    assert "more than its Content-Length" in srv.wait_log("more than its Content-Length")


def test_body_shorter_than_content_length_closes(srv):
    with srv.connect() as conn:
        conn.send(b"GET /shorter-than-cl HTTP/1.1\r\nHost: x\r\n\r\n")
        version, status, _, headers = conn.read_head()
        assert status == 200 and dict(headers)["content-length"] == "100"
        assert conn.read_to_close() == b"only twenty bytes..."
    assert "of its declared Content-Length 100" in srv.wait_log("declared Content-Length 100")
    srv.assert_healthy()


def _pids_accepting(srv):
    """The workers the master lists as ready and accepting (stats socket): every one, not
    those a few requests happen to reach."""
    return {w["pid"] for w in srv.stats()["workers"] if w["accepting"] and w["pid"] > 0}


@pytest.mark.parametrize("path,death", [("/exit", "exited with status 7"),
                                        ("/segfault", "killed by signal 11")])
def test_app_killing_its_worker_loses_only_that_workers_requests(srv, path, death):
    tag = path.strip("/")
    before = srv.log_text().count(death)
    results = {}

    def slow(i):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            conn.request("GET", "/slow?s=1.5&tag=%s-%d" % (tag, i))
            resp = conn.getresponse()
            results[i] = (resp.status, resp.read())
        except (OSError, http.client.HTTPException) as e:
            results[i] = ("lost", repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    # Every slow request is in flight (recorded) before the killer arrives.
    deadline = time.monotonic() + 5
    while srv.record.read_text().count(" %s-" % tag) < 16 and time.monotonic() < deadline:
        time.sleep(0.02)
    status = None
    try:
        status = srv.request("GET", path + "?tag=" + tag, timeout=5)[0]
    except (OSError, http.client.HTTPException):
        pass
    assert status is None, "the killer request got a response"
    for t in threads:
        t.join()

    lines = [l.split() for l in srv.record.read_text().splitlines()]
    killed = {int(w[1]) for w in lines if w[0] == "exit" and w[2] == tag}
    assert len(killed) == 1
    started = {w[2]: int(w[1]) for w in lines if w[0] == "start" and w[2].startswith(tag + "-")}
    for i, (st, body) in results.items():
        pid = started["%s-%d" % (tag, i)]
        if pid in killed:
            assert st == "lost", (i, st, body)  # in flight on the dead worker
        else:
            assert st == 200 and int(body) == pid, (i, st, body)
    assert death in srv.wait_log(death, count=before + 1)
    # Respawned: two workers serve again, and the dead pid is not among them.
    pids = wait_for(lambda: (lambda p: p if len(p) == 2 and not (p & killed) else None)(
        _pids_accepting(srv)), timeout=10) or _pids_accepting(srv)
    assert len(pids) == 2 and not (pids & killed), pids
    srv.assert_healthy()
