"""Suspended requests keep their Python frames intact whatever their depth (SPEC.md "Python
side": a request suspends with greenlet.getcurrent().parent.switch()).

A core greenlet starts on a small frame-stack chunk; calls deeper than it get CPython's own
chunks, and a core whose requests went deeper switches to those for good between requests.
These tests mix shallow and deep suspended requests on the same few cores, so that every
transition happens while other requests are suspended, and check that each client gets its
own answer, every frame keeps its locals, and the worker never restarts.
"""
import random
import threading
import uuid

import pytest

from conftest import APPS

UVLOOP = True  # suspension and wake-up run on the loop: both loops

APP = APPS / "frame_depth_app.py"
DEPTHS = [0, 1, 2, 5, 12, 40, 150, 400]


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(APP, workers=1, cores=6)


def get(server, path):
    status, _, body = server.request("GET", path, timeout=30)
    return status, body.decode("latin-1")


def pid_of(server):
    status, body = get(server, "/pid")
    assert status == 200
    return int(body)


def run_clients(server, plan):
    """plan: list of depths, one client each, all started together; returns the failures."""
    failures = []
    lock = threading.Lock()

    def one(depth):
        t = uuid.uuid4().hex[:10]
        try:
            status, body = get(server, "/?depth=%d&t=%s&delay=%.2f"
                               % (depth, t, random.uniform(0.02, 0.15)))
            ok = status == 200 and body == "%s %d" % (t, depth)
            what = (depth, status, body[:80])
        except Exception as e:  # recorded, asserted below
            ok, what = False, (depth, repr(e))
        if not ok:
            with lock:
                failures.append(what)

    threads = [threading.Thread(target=one, args=(d,)) for d in plan]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return failures


def test_each_depth_alone_resumes_with_its_frames(srv):
    pid = pid_of(srv)
    for depth in DEPTHS + list(reversed(DEPTHS)):
        assert run_clients(srv, [depth]) == []
    assert pid_of(srv) == pid


def test_shallow_and_deep_requests_suspended_together(srv):
    pid = pid_of(srv)
    rng = random.Random(7)
    for _round in range(6):
        # More clients than cores: requests queue, and every core serves several depths.
        plan = [rng.choice(DEPTHS) for _ in range(20)]
        assert run_clients(srv, plan) == [], plan
    assert pid_of(srv) == pid
    log = srv.log_text()
    assert "Traceback" not in log
    assert "lost its locals" not in log


@pytest.mark.parametrize("depth", [0, 400])
def test_many_held_at_one_depth(server_factory, depth):
    # More held requests than a handful of cores: each core greenlet holds one, all at once.
    server = server_factory(APP, workers=1, cores=64)
    pid = pid_of(server)
    assert run_clients(server, [depth] * 64) == []
    assert run_clients(server, [DEPTHS[(i % len(DEPTHS))] for i in range(64)]) == []
    assert pid_of(server) == pid


def minor_faults(pid):
    return int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[7])


def test_crossing_the_small_chunk_again_and_again_reuses_one_chunk(server_factory):
    # A request on its core's small chunk that goes deeper and back, many times (a websocket
    # handler does so per message): CPython frees the deeper chunk on each return; the worker
    # keeps it for the next crossing instead of unmapping it and mapping a fresh one, which
    # would cost at least one page fault per crossing.
    # Ready on /pid: the first requests neither go deep nor suspend, so that /seesaw starts
    # on the core's small chunk.
    server = server_factory(APP, workers=1, cores=1, ready_path="/pid")
    pid = pid_of(server)
    n = 5000
    before = minor_faults(pid)
    status, body = get(server, "/seesaw?n=%d&depth=30" % n)
    after = minor_faults(pid)
    assert (status, body) == (200, str(n))
    assert after - before < n // 5, "%d page faults for %d crossings" % (after - before, n)
    assert pid_of(server) == pid
