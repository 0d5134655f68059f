"""The master's boundaries. max_requests is exact (SPEC.md "Signals to the master"): the
worker that has handed N requests to the app takes on no more, says "Connection: close" on
the Nth response, finishes what it has and exits, and its replacement serves the rest; no
request fails. The pidfile is locked for the master's life and never followed as a link."""
import re
import subprocess

import pytest

from conftest import BACKEND, Server, find_master, free_port, wait_for

pytestmark = pytest.mark.skipif(BACKEND.startswith("uwsgi"), reason="aiowsgi limits only")

APP = '''
import os

SERVED = 0


def application(environ, start_response):
    global SERVED
    SERVED += 1
    body = ("%d %d" % (os.getpid(), SERVED)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

MAX = 5


def ready_pids(server):
    return [int(p) for p in re.findall(r"worker 1 ready \(pid (\d+)\)", server.log_text())]


def worker_pids(server):
    return sorted(p for p in server.group_pids() if p != server.pid)


@pytest.fixture
def server(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    srv = Server(tmp_path, app, workers=1, cores=10, limits={"max_requests": MAX}).start()
    yield srv
    srv.stop()


def fresh_worker(server):
    """Spends what is left of the first worker's budget (the readiness probe took one) and
    returns the pid of a replacement that is ready and has served nothing yet."""
    first = wait_for(lambda: ready_pids(server), 20.0)[0]
    served = 1
    while served < MAX:
        status, headers, body = server.request("GET", "/")
        assert status == 200
        pid, count = map(int, body.split())
        assert pid == first, (pid, first, served)
        served = count
    assert served == MAX
    assert wait_for(lambda: len(ready_pids(server)) >= 2, 20.0), server.log_text()
    fresh = ready_pids(server)[-1]
    assert fresh != first
    # The retired worker finished and left on its own (nothing was in flight).
    assert wait_for(lambda: first not in worker_pids(server), 20.0), worker_pids(server)
    return fresh


def parse(body):
    pid, count = body.split()
    return int(pid), int(count)


def test_fresh_connections_the_nth_request_is_the_last(server):
    fresh = fresh_worker(server)
    results = []
    for _ in range(8):
        status, headers, body = server.request("GET", "/")
        results.append((status, headers.get("connection", ""), parse(body)))
    assert [r[0] for r in results] == [200] * 8, results
    pids = [r[2][0] for r in results]
    assert pids[:MAX] == [fresh] * MAX, results
    assert [r[2][1] for r in results[:MAX]] == list(range(1, MAX + 1)), results
    assert results[MAX - 1][1].lower() == "close", results  # the Nth says so
    later = set(pids[MAX:])
    assert len(later) == 1 and fresh not in later, results  # the 6th onward: the replacement
    assert [r[2][1] for r in results[MAX:]] == [1, 2, 3], results
    log = server.log_text()
    assert "max_requests %d reached" % MAX in log
    assert "(pid %d) exited with status 0" % fresh in log
    assert "respawning" not in log  # an expected exit, not a crash


def test_keep_alive_connection_is_closed_after_the_nth(server):
    fresh = fresh_worker(server)
    seen = []
    with server.connect() as conn:
        for i in range(1, MAX + 1):
            resp = conn.request("GET", "/")
            assert resp.status == 200
            seen.append(parse(resp.body))
            expect_close = i == MAX
            assert (resp.header("connection", "").lower() == "close") == expect_close, (i, resp)
        assert conn.closed_by_peer(timeout=5)
    assert seen == [(fresh, n) for n in range(1, MAX + 1)]
    with server.connect() as conn:  # the client reconnects: the replacement answers
        later = [parse(conn.request("GET", "/").body) for _ in range(3)]
    assert len({p for p, _ in later}) == 1 and later[0][0] != fresh, later
    assert [n for _, n in later] == [1, 2, 3]


def test_request_pipelined_after_the_nth_is_not_served_but_announced(server):
    """The Nth response carries Connection: close, so a client that pipelined more knows
    they were not processed (RFC 9112 9.3.2) and sends them again on a new connection."""
    fresh = fresh_worker(server)
    with server.connect() as conn:
        for i in range(1, MAX - 1):
            assert parse(conn.request("GET", "/").body) == (fresh, i)
        conn.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        before_last = conn.read_response()
        assert before_last.status == 200
        assert parse(before_last.body) == (fresh, MAX - 1)
        assert before_last.header("connection") is None  # still room for /b
        last = conn.read_response()
        assert parse(last.body) == (fresh, MAX)
        assert last.header("connection", "").lower() == "close"
        conn.send(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")  # too late: not processed
        assert conn.closed_by_peer(timeout=5)
        assert conn.buf == b""
    with server.connect() as conn:
        retried = conn.request("GET", "/c")
        assert retried.status == 200
        assert parse(retried.body)[0] != fresh


def test_pipelined_burst_is_cut_exactly_at_the_nth(server):
    fresh = fresh_worker(server)
    burst = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(MAX + 3))
    with server.connect() as conn:
        conn.send(burst)
        answered = []
        while True:
            try:
                resp = conn.read_response()
            except EOFError:
                break
            answered.append((parse(resp.body), resp.header("connection", "").lower()))
            if resp.header("connection", "").lower() == "close":
                assert conn.closed_by_peer(timeout=5)
                break
    assert [a[0] for a in answered] == [(fresh, n) for n in range(1, MAX + 1)], answered
    assert answered[-1][1] == "close"
    # The three unanswered ones go to the replacement on a new connection.
    for _ in range(3):
        status, _, body = server.request("GET", "/")
        assert status == 200 and parse(body)[0] != fresh


def run_second_master(tmp_path, pidfile, port_config):
    app = tmp_path / "app2.py"
    app.write_text(APP)
    second = Server(tmp_path, app, server={"pidfile": str(pidfile)})
    second.port = port_config
    second.config_path = tmp_path / "second.toml"
    second.config_path.write_text(second.config_text())
    return subprocess.run([find_master(), "-c", str(second.config_path)], capture_output=True,
                          text=True, timeout=30)


def test_a_second_master_with_the_same_pidfile_is_refused(tmp_path):
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    pidfile = tmp_path / "master.pid"
    app = first_dir / "app.py"
    app.write_text(APP)
    first = Server(first_dir, app, server={"pidfile": str(pidfile)}).start()
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text() == "%d\n" % first.pid,
                        20.0)
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        r = run_second_master(second_dir, pidfile, free_port())
        assert r.returncode == 5, (r.returncode, r.stderr)
        assert "locked by another running master (pid %d)" % first.pid in r.stderr, r.stderr
        assert pidfile.read_text() == "%d\n" % first.pid  # left as it was
        assert first.request("GET", "/")[0] == 200
    finally:
        assert first.stop() == 0
    assert not pidfile.exists()


def test_a_symlink_at_the_pidfile_path_is_refused(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep\n")
    pidfile = tmp_path / "master.pid"
    pidfile.symlink_to(target)
    r = run_second_master(tmp_path, pidfile, free_port())
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "is a symbolic link; refusing to follow it" in r.stderr, r.stderr
    assert target.read_text() == "keep\n"
