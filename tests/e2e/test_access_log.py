"""Access log: one line per request, text or JSON ([log] format), to the [log] file, which
is reopened on SIGUSR1 after logrotate moved it. Lines are written in batches: within about a
second without further traffic, and none lost on a graceful stop, reload or reopen; lines
from several workers stay whole in a shared file or pipe."""
import base64
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time

from conftest import APPS, EXAMPLES, RawConnection, Server, free_port, request_every_core

APP = APPS / "obs_app.py"


def wait_lines(path, predicate, timeout=15.0, count=1):
    """The lines of |path| matching |predicate|, once there are |count| (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lines = [l for l in path.read_text(errors="replace").splitlines() if predicate(l)]
        except FileNotFoundError:
            lines = []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_text_lines(tmp_path):
    s = Server(tmp_path, APP, workers=1, cores=2).start()
    try:
        s.request("GET", "/status/404?q=1")
        with s.connect() as c:  # http.client refuses such a target; the server takes it
            c.request("GET", '/we"ird\xe9')
        lines = wait_lines(s.log_path, lambda l: "[access]" in l and "/status/404" in l)
        assert len(lines) == 1, s.log_text()
        m = re.search(r'\[access\] 127\.0\.0\.1 "GET /status/404\?q=1" 404 (\d+) '
                      r'(\d+\.\d{3})ms worker=1 core=(\d+)$', lines[0])
        assert m, lines[0]
        assert int(m.group(1)) > len(b"status 404")
        weird = wait_lines(s.log_path, lambda l: "[access]" in l and "we" in l)
        assert weird and '"GET /we\\"ird\\xe9"' in weird[0], weird
    finally:
        s.stop()


def test_json_lines_and_access_off(tmp_path):
    s = Server(tmp_path / "json", APP, workers=1, cores=2, log={"format": "json"})
    (tmp_path / "json").mkdir()
    s.start()
    try:
        s.request("GET", "/boom")
        s.request("POST", "/", body=b"x" * 10)
        lines = wait_lines(s.log_path, lambda l: l.startswith("{"))
        deadline = time.monotonic() + 5
        while len(lines) < 3 and time.monotonic() < deadline:  # readiness probe + 2
            lines = wait_lines(s.log_path, lambda l: l.startswith("{"))
        objs = [json.loads(l) for l in lines]
        boom = [o for o in objs if o["path"] == "/boom"]
        assert len(boom) == 1
        o = boom[0]
        assert o["status"] == 500 and o["method"] == "GET" and o["remote"] == "127.0.0.1"
        assert o["worker"] == 1 and isinstance(o["core"], int)
        assert o["bytes"] > 0 and isinstance(o["duration_us"], int)
        assert o["pid"] in s.group_pids() and o["time"].startswith(time.strftime("%Y-"))
        assert any(x["method"] == "POST" and x["status"] == 200 for x in objs)
    finally:
        s.stop()
    q = Server(tmp_path / "off", APP, workers=1, cores=2, log={"access": False})
    (tmp_path / "off").mkdir()
    q.start()
    try:
        q.request("GET", "/status/404")
        # A barrier instead of a sleep: the worker writes an access line before it handles
        # its next control message, so once it has logged the SIGUSR1 reopen, a line for
        # the request above would be there.
        os.kill(q.pid, signal.SIGUSR1)
        assert "worker log files reopened" in q.wait_log("worker log files reopened", timeout=15)
        assert "[access]" not in q.log_text()
    finally:
        q.stop()


def test_log_file_is_reopened_on_sigusr1(tmp_path):
    log_file = tmp_path / "aiowsgi.log"
    s = Server(tmp_path, APP, workers=2, cores=2, log={"file": str(log_file)},
               stats_socket=True).start()
    try:
        s.request("GET", "/status/201")
        assert wait_lines(log_file, lambda l: "/status/201" in l)
        rotated = tmp_path / "aiowsgi.log.1"
        os.rename(log_file, rotated)  # what logrotate does before postrotate
        os.kill(s.pid, signal.SIGUSR1)
        assert wait_lines(log_file, lambda l: "log files reopened" in l)
        # Each worker reopens when the master's message reaches it, and says so.
        assert len(wait_lines(log_file, lambda l: "worker log files reopened" in l, count=2)) == 2
        # Both workers write to the new file: each gets requests (held until all are in).
        release = tmp_path / "release"
        request_every_core(s, "/hold?%s" % release, release.touch)
        new = wait_lines(log_file, lambda l: "[access]" in l and "/hold" in l, count=4)
        assert len(new) == 4
        assert {re.search(r"worker=(\d+)", l).group(1) for l in new} == {"1", "2"}, new
        assert "/hold" not in rotated.read_text()
        assert "/status/201" in rotated.read_text()
    finally:
        s.stop()


# ---- batched writes ----

LINE = re.compile(r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[(\d+)\] \[worker (\d+)\] '
                  r'\[access\] 127\.0\.0\.1 "GET (/\S*)" (\d{3}) (\d+) \d+\.\d{3}ms '
                  r'worker=\d+ core=\d+$')
# The server's own lines: "[time] [pid] [master|worker N] [level] text".
SERVER_LINE = re.compile(r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[\d+\] '
                         r'\[(master|worker \d+)\] \[(trace|debug|info|warning|error|critical)\] ')


def access_targets(text, tag):
    """Targets of the parsed access lines whose target contains |tag|; fails on a torn line."""
    out = []
    for line in text.splitlines():
        if "[access]" not in line or tag not in line:
            continue
        m = LINE.match(line)
        assert m, "not one whole access line: %r" % line[:300]
        out.append(m.group(3))
    return out


def get_many(server, paths):
    """GETs each path on one keep-alive connection; all must answer 200."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for p in paths:
            conn.request("GET", p)
            r = conn.getresponse()
            r.read()
            assert r.status == 200, (p, r.status)
    finally:
        conn.close()


def test_no_line_lost_on_term(tmp_path):
    s = Server(tmp_path, APP, workers=1, cores=4).start()
    n = 300
    get_many(s, ["/?term=%d" % i for i in range(n)])
    assert s.stop() == 0  # straight after the last response: lines still in the batch
    got = access_targets(s.log_text(), "term=")
    assert sorted(got) == sorted("/?term=%d" % i for i in range(n))


def test_no_line_lost_on_hup(tmp_path):
    s = Server(tmp_path, APP, workers=2, cores=4).start()
    try:
        n = 200
        get_many(s, ["/?hup=%d" % i for i in range(n)])
        os.kill(s.pid, signal.SIGHUP)
        # A worker writes out its lines before it says it stopped.
        deadline = time.monotonic() + 20
        while s.log_text().count(" stopped after ") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.log_text().count(" stopped after ") == 2, s.log_text()
        got = access_targets(s.log_text(), "hup=")
        assert sorted(got) == sorted("/?hup=%d" % i for i in range(n))
        get_many(s, ["/?after=1"])  # the new workers serve and log
        assert wait_lines(s.log_path, lambda l: "[access]" in l and "after=1" in l, timeout=10)
    finally:
        s.stop()


def test_lines_appear_without_further_traffic(tmp_path):
    s = Server(tmp_path, APP, workers=1, cores=2).start()
    try:
        t0 = time.monotonic()
        s.request("GET", "/?quiet=1")
        # Flushed by the worker's periodic tick (about a second at most); 10 s is a margin
        # for a loaded machine, not the expected delay.
        lines = wait_lines(s.log_path, lambda l: "quiet=1" in l, timeout=10)
        assert len(lines) == 1, s.log_text()
        print("access line visible after %.2f s" % (time.monotonic() - t0))
    finally:
        s.stop()


def test_reopen_keeps_every_line_on_its_side_of_the_rotation(tmp_path):
    log_file = tmp_path / "aiowsgi.log"
    s = Server(tmp_path, APP, workers=2, cores=4, log={"file": str(log_file)}).start()
    try:
        n = 150
        before = ["/?before=%d" % i for i in range(n)]
        after = ["/?after=%d" % i for i in range(n)]
        get_many(s, before)
        rotated = tmp_path / "aiowsgi.log.1"
        os.rename(log_file, rotated)
        os.kill(s.pid, signal.SIGUSR1)
        assert len(wait_lines(log_file, lambda l: "worker log files reopened" in l,
                              count=2, timeout=10)) == 2
        for i in range(0, n, 10):  # several connections: both workers take some
            get_many(s, after[i:i + 10])
    finally:
        assert s.stop() == 0
    old, new = rotated.read_text(), log_file.read_text()
    assert sorted(access_targets(old, "before=")) == sorted(before)
    assert access_targets(old, "after=") == []
    assert sorted(access_targets(new, "after=")) == sorted(after)
    assert access_targets(new, "before=") == []


def hammer(port, paths, failures):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        for p in paths:
            conn.request("GET", p)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                failures.append((p, r.status))
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.close()
    except Exception as e:  # reported by the test, not lost in the thread
        failures.append(repr(e))


def concurrent_load(port, tag, clients=8, per_client=150):
    """Requests from |clients| connections at once, with long targets so that batches hold
    few lines; returns the targets sent."""
    pad = "p" * 700
    plans = [["/?%s=%d-%d&%s" % (tag, c, i, pad) for i in range(per_client)]
             for c in range(clients)]
    failures = []
    threads = [threading.Thread(target=hammer, args=(port, plan, failures)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    return [p for plan in plans for p in plan]


def check_every_line_whole(text, tag, sent):
    workers = set()
    for line in text.splitlines():
        if not line or line.startswith("===="):
            continue
        m = LINE.match(line)
        assert m or SERVER_LINE.match(line), "torn or interleaved line: %r" % line[:300]
        if m and tag in line:
            workers.add(m.group(2))
    assert sorted(access_targets(text, tag + "=")) == sorted(sent)
    return workers


def test_two_workers_share_one_file_without_interleaving(tmp_path):
    log_file = tmp_path / "aiowsgi.log"
    s = Server(tmp_path, APP, workers=2, cores=8, log={"file": str(log_file)}).start()
    try:
        sent = concurrent_load(s.port, "file")
    finally:
        assert s.stop() == 0
    workers = check_every_line_whole(log_file.read_text(), "file", sent)
    print("workers that logged: %s" % sorted(workers))


def test_two_workers_share_one_pipe_without_interleaving(tmp_path):
    # stderr is a pipe here (as under systemd's journal or a container runtime): batches go
    # out in chunks of whole lines small enough to stay in one piece.
    s = Server(tmp_path, APP, workers=2, cores=8)
    s.port = free_port()
    s.config_path.write_text(s.config_text())
    proc = subprocess.Popen(s.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(tmp_path), start_new_session=True)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read(65536),
                                                                b"")))
    reader.start()
    try:
        s.proc = proc
        s.wait_ready()
        sent = concurrent_load(s.port, "pipe")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(20)
    check_every_line_whole(b"".join(chunks).decode(errors="replace"), "pipe", sent)


def test_websocket_session_is_logged_as_101(tmp_path):
    s = Server(tmp_path, APPS / "uwsgi_app.py", workers=1, cores=4).start()
    try:
        conn = s.connect()
        key = base64.b64encode(os.urandom(16)).decode()
        conn.send(("GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        _, status, _, _ = conn.read_head()
        assert status == 101
        payload = b"x" * 3000
        mask = os.urandom(4)
        conn.send(bytes([0x82, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        b0, b1 = conn.read_exact(2)
        assert b0 & 0x0F in (1, 2) and b1 & 0x7F == 126  # echoed as text
        assert len(conn.read_exact(struct.unpack("!H", conn.read_exact(2))[0])) == 3000
        time.sleep(0.3)  # a session that lasts: its duration is logged, not the handshake's
        conn.send(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in
                                                     enumerate(struct.pack("!H", 1000))))
        conn.closed_by_peer(5)
        conn.close()
        lines = wait_lines(s.log_path, lambda l: "[access]" in l and "/ws/echo" in l, timeout=10)
        assert len(lines) == 1, s.log_text()
        m = re.search(r'"GET /ws/echo" (\d+) (\d+) (\d+)\.(\d{3})ms', lines[0])
        assert m, lines[0]
        assert m.group(1) == "101"
        assert int(m.group(2)) > 3000  # the 101 head and the echoed message
        assert int(m.group(3)) * 1000 + int(m.group(4)) >= 250
    finally:
        s.stop()
