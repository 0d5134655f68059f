"""Hostile clients: a connection takes no core until its request head is
complete, so slowloris tricklers cannot starve normal requests, and each is cut off at
header_timeout with 408; slow body senders and slow readers hold at most their own core;
running out of file descriptors pauses accepting (logged), never spins or crashes."""
import http.client
import os
import resource
import selectors
import socket
import statistics
import threading
import time

import pytest

from conftest import APPS

UVLOOP = True  # reads, writes and accept pauses are loop watchers: test both loops

TRICKLERS = int(os.environ.get("AIOWSGI_SLOWLORIS", "1000"))
HEADER_TIMEOUT = 4.0


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def timed_get(port, path="/", timeout=10):
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body, time.monotonic() - t0
    finally:
        conn.close()


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_slowloris_does_not_starve_normal_requests(server_factory):
    """1,000 connections trickle header bytes at one worker with 100 cores: normal requests
    stay fast, and every trickler gets 408 at header_timeout."""
    assert raise_fd_limit(TRICKLERS * 2 + 200) >= TRICKLERS + 100
    srv = server_factory(APPS / "misbehaving_app.py", workers=1, cores=100,
                         limits={"header_timeout": HEADER_TIMEOUT})
    baseline = [timed_get(srv.port)[2] for _ in range(20)]

    sel = selectors.DefaultSelector()
    socks = []
    t_open = time.monotonic()
    for i in range(TRICKLERS):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /slowloris-%d HTTP/1.1\r\nHost: x\r\n" % i)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, i)
    opened = time.monotonic() - t_open

    replies = {}
    latencies = []
    deadline = t_open + opened + HEADER_TIMEOUT + 5
    next_trickle = time.monotonic()
    next_probe = time.monotonic()
    while len(replies) < TRICKLERS and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_trickle:  # one more header byte from every live trickler, each second
            for i, s in enumerate(socks):
                if i not in replies:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
            next_trickle = now + 1.0
        if now >= next_probe:  # a normal client, while the tricklers are attached
            if len(replies) < TRICKLERS // 2:
                status, body, took = timed_get(srv.port)
                assert status == 200 and body == b"ok"
                latencies.append(took)
            next_probe = now + 0.1
        for key, _ in sel.select(timeout=0.05):
            i = key.data
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            sel.unregister(key.fileobj)
            replies[i] = (data, time.monotonic())
    for s in socks:
        s.close()

    assert len(replies) == TRICKLERS, "%d tricklers never answered" % (TRICKLERS - len(replies))
    not_408 = [i for i, (d, _) in replies.items() if not d.startswith(b"HTTP/1.1 408")]
    assert not not_408, "tricklers without 408: %r" % [(i, replies[i][0][:60]) for i in not_408[:5]]
    cut = sorted(t - t_open for _, t in replies.values())
    # Cut off at header_timeout after their connect (tick granularity 0.25 s), not long after.
    assert cut[0] >= HEADER_TIMEOUT - 0.3, cut[0]
    assert cut[-1] <= opened + HEADER_TIMEOUT + 2.0, (cut[-1], opened)
    assert len(latencies) >= 10
    p50 = statistics.median(latencies)
    worst = max(latencies)
    print("\nslowloris: %d tricklers, opened in %.2f s; normal GET latency with them attached: "
          "p50 %.1f ms, max %.1f ms (baseline p50 %.1f ms); 408 after %.2f..%.2f s"
          % (TRICKLERS, opened, p50 * 1e3, worst * 1e3, statistics.median(baseline) * 1e3,
             cut[0], cut[-1]))
    assert p50 < 0.1 and worst < 1.0, (p50, worst)
    srv.assert_healthy()


@pytest.fixture(scope="module")
def small(server_factory):
    """One worker with 4 cores: three hostile clients leave exactly one core."""
    return server_factory(APPS / "misbehaving_app.py", workers=1, cores=4, stats_socket=True,
                          limits={"header_timeout": HEADER_TIMEOUT, "keepalive_timeout": 30})


def test_slow_body_senders_hold_only_their_own_core(small):
    socks = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", small.port), timeout=10)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n0123")
        socks.append(s)
    stop = threading.Event()
    sent = [4]

    def trickle():  # one body byte per sender every 0.2 s
        while not stop.is_set() and sent[0] < 39:
            time.sleep(0.2)
            for s in socks:
                s.sendall(b"x")
            sent[0] += 1

    t = threading.Thread(target=trickle)
    t.start()
    try:
        assert small.wait_in_request(3) == 3  # the three cores are reading their bodies now
        lat = [timed_get(small.port)[2] for _ in range(20)]
        # Blocked behind the senders, a GET would wait for their bodies (7 s).
        assert max(lat) < 2.0, lat
    finally:
        stop.set()
        t.join()
    for s in socks:
        s.sendall(b"x" * (40 - sent[0]))
    # Each slow sender still gets its answer once its body is complete.
    for s in socks:
        s.settimeout(10)
        data = b""
        while not data.endswith(b"\r\n\r\n40"):  # /echo answers the body's length
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n40"), data
        s.close()


def test_slow_readers_hold_only_their_own_core(small):
    n = 8 << 20
    readers = []
    for _ in range(3):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", small.port))
        s.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        readers.append(s)
    # Their cores are blocked writing into full socket buffers (the stats socket shows them
    # in their requests until the readers read).
    assert small.wait_in_request(3) == 3
    lat = [timed_get(small.port)[2] for _ in range(20)]
    # Blocked behind the readers, a GET would never be answered (they read nothing yet).
    assert max(lat) < 2.0, lat
    # The slow readers get every byte once they read.
    for s in readers:
        s.settimeout(20)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, body = got.split(b"\r\n\r\n", 1)
        total = len(body)
        while total < n:
            chunk = s.recv(1 << 20)
            assert chunk, "closed after %d of %d bytes" % (total, n)
            total += len(chunk)
        assert total == n
        s.close()
    small.assert_healthy()


def test_out_of_file_descriptors_pauses_accepting(small):
    """EMFILE on accept: the worker logs, pauses accepting briefly, does not spin, and serves
    the waiting clients once descriptors are free again."""
    pid = int(small.request("GET", "/pid")[2])
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/%d/fd" % pid))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 3, hard))
    held = []
    try:
        for _ in range(30):  # keep-alive clients: each accepted one keeps its descriptor
            s = socket.create_connection(("127.0.0.1", small.port), timeout=10)
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        text = small.wait_log("pausing accepts", timeout=15)
        assert "Too many open files" in text and "pausing accepts" in text
        cpu0 = cpu_seconds(pid)
        time.sleep(2)
        used = cpu_seconds(pid) - cpu0
        assert used < 0.5, "worker spun at %.2f CPU-seconds in 2 s while out of fds" % used
        assert os.path.exists("/proc/%d" % pid) and small.proc.poll() is None
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    # Every waiting client is served once descriptors are available.
    for s in held:
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, "a waiting client was dropped"
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data
        s.close()
    assert int(small.request("GET", "/pid")[2]) == pid  # same worker: it never crashed


def test_connection_cap_pauses_accepting_until_one_closes(server_factory):
    """[limits] max_connections: at the cap the worker stops accepting (the kernel queues the
    newcomer) and resumes as soon as one of its connections closes."""
    srv = server_factory(APPS / "misbehaving_app.py", workers=1, cores=4,
                         limits={"max_connections": 2, "keepalive_timeout": 30})
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
    # Both accepted: the worker is at its cap, and says so.
    assert "max_connections" in srv.wait_log("max_connections")
    late = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    late.settimeout(1.0)
    with pytest.raises(socket.timeout):
        late.recv(1)  # not accepted yet, so not answered
    idle[0].close()
    late.settimeout(10)
    assert late.recv(64).startswith(b"HTTP/1.1 ")
    assert "max_connections" in srv.log_text()
    late.close()
    idle[1].close()
