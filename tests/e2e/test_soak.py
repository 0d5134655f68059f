"""Soak and leaks: a short bench/soak (steady mixed load while the
master gets SIGHUP every 2 s and a worker SIGKILL every 5 s) loses no request to a reload and
only in-flight ones to a killed worker, without RSS growth; and a worker's RSS returns near
its baseline after a burst of 5,000 connections."""
import json
import os
import selectors
import socket
import subprocess
import sys
import time

import pytest

from conftest import APPS, REPO, find_master, wait_for

pytestmark = pytest.mark.slow  # a 20 s soak and a 5,000-connection burst: the slow tier

SOAK_SECONDS = float(os.environ.get("AIOWSGI_SOAK_SECONDS", "20"))


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_short_soak(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "soak"), "--seconds",
                           str(SOAK_SECONDS), "--master", find_master(), "--json", str(out)],
                          capture_output=True, text=True, timeout=SOAK_SECONDS + 120)
    print(proc.stdout, proc.stderr)
    r = json.loads(out.read_text())
    assert r["master_alive"]
    assert r["sent"] > 500 and r["hups"] >= SOAK_SECONDS // 2 - 1 and r["kills"] >= 1
    assert r["failed_in_reload"] == 0, r["failed_examples"]
    # Only requests in flight on a killed worker: at most every client's one request per kill.
    assert r["lost_with_killed"] <= r["kills"] * r["clients"], r
    assert r["ok"] + r["lost_with_killed"] == r["sent"], r
    m0, m1 = r["rss_kb"]["master"]
    w0, w1 = r["rss_kb"]["worker_mean"]
    assert m1 - m0 < 2048, "master RSS grew %d -> %d kB over %d reloads" % (m0, m1, r["hups"])
    assert w1 - w0 < 8192, "worker RSS grew %d -> %d kB" % (w0, w1)
    assert proc.returncode == 0


def burst(port, total, wave=500):
    """`total` connections, `wave` open at once, one request each, all answered."""
    done = 0
    while done < total:
        n = min(wave, total - done)
        sel = selectors.DefaultSelector()
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      b"Connection: close\r\n\r\nhello")
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, [b""])
        pending = n
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(65536)
                key.data[0] += data
                if not data:
                    assert key.data[0].startswith(b"HTTP/1.1 200"), key.data[0][:80]
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    pending -= 1
        assert pending == 0, "%d connections unanswered" % pending
        done += n


def test_worker_rss_returns_after_burst_of_5000_connections(server_factory):
    srv = server_factory(APPS / "soak_app.py", workers=1, cores=100,
                         log={"access": False})
    pid = [p for p in srv.group_pids() if p != srv.pid][0]
    idle_fds = open_fds(pid)
    burst(srv.port, 500)  # warm-up: cores created, allocator pools sized
    # Every connection closed on the worker's side too (its descriptors are back), rather
    # than a fixed settling time.
    assert wait_for(lambda: open_fds(pid) <= idle_fds, timeout=15), (open_fds(pid), idle_fds)
    base = rss_kb(pid)
    burst(srv.port, 5000)
    assert wait_for(lambda: open_fds(pid) <= idle_fds, timeout=15), (open_fds(pid), idle_fds)
    # RSS returns near the baseline: polled, so a slow free on a loaded machine is waited
    # for; a leak of a few hundred bytes per connection never gets there.
    wait_for(lambda: rss_kb(pid) - base < 4096, timeout=10, interval=0.2)
    after = rss_kb(pid)
    print("\nworker RSS: baseline %d kB, after 5,000 connections %d kB (+%d kB)"
          % (base, after, after - base))
    assert after - base < 4096, (base, after)
    assert [p for p in srv.group_pids() if p != srv.pid] == [pid]  # same worker throughout
