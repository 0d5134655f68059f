"""Where a stuck request is, in the log (issue #21): the Python stack of a suspended request
that harakiri cancels, of the code that blocks the loop before the master kills the worker,
and of every request in flight on `kill -USR2 <worker pid>`, which disturbs none of them."""
import os
import re
import signal
import threading
import time

import pytest

from conftest import APPS, BACKEND, wait_for

pytestmark = pytest.mark.skipif(BACKEND != "aiowsgi", reason="aiowsgi's own log and signals")

UVLOOP = True

APP = APPS / "stacks_app.py"


def line_of(marker):
    """The line number of the app's source line holding `marker`."""
    for n, text in enumerate(APP.read_text().splitlines(), 1):
        if marker in text:
            return n
    raise AssertionError(marker)


def in_thread(fn):
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the test that reads the box
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def get(server, path, timeout=30):
    status, _, body = server.request("GET", path, timeout=timeout)
    return status, body.decode()


def worker_pid(server):
    return server.stats()["workers"][0]["pid"]


def log_after(server, mark):
    """The log text written since `mark` (an offset from len(server.log_text()))."""
    return server.log_text()[mark:]


@pytest.fixture(scope="module")
def harakiri_server(server_factory):
    return server_factory(APP, workers=1, cores=4, limits={"harakiri": 1}, stats_socket=True)


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APP, workers=1, cores=6, stats_socket=True)


def test_harakiri_logs_where_a_suspended_request_waited(harakiri_server):
    s = harakiri_server
    mark = len(s.log_text())
    assert get(s, "/sleep_suspended?30")[0] == 504
    log = log_after(s, mark)
    frame = 'stacks_app.py", line %d, in sleep_suspended' % line_of("# suspended_here")
    assert re.search(r"harakiri: GET /sleep_suspended\?30 on core \d+ cancelled after", log), log
    # Traceback layout, innermost last: the app's frame with its source line, then the await_
    # it waits in, all after the harakiri line.
    head = log.index("cancelled after")
    assert log.index(frame, head) > head, log
    assert "aiowsgi.sleep(seconds)  # suspended_here" in log
    assert log.index("in sleep", log.index(frame)) > log.index(frame)
    assert get(s, "/")[0] == 200  # the worker serves on


def test_harakiri_of_a_blocked_loop_logs_the_blocking_line_before_the_kill(harakiri_server):
    s = harakiri_server
    old_pid = worker_pid(s)
    mark = len(s.log_text())
    t, box = in_thread(lambda: get(s, "/block?30"))
    needle = "worker 1 harakiri: killing pid %d" % old_pid
    assert needle in s.wait_log(needle, timeout=20)[mark:], log_after(s, mark)
    log = log_after(s, mark)
    asked = log.index("its stack follows (SIGUSR2)")
    # faulthandler's layout: file, line and function, innermost first, no source line.
    frame = 'stacks_app.py", line %d in block_the_loop' % line_of("# blocking_here")
    assert asked < log.index(frame) < log.index(needle), log
    assert "GET /block?30" in log[:asked + 200]
    t.join(30)
    assert "error" in box or box["result"][0] != 200, box  # lost with its worker, by design
    assert wait_for(lambda: worker_pid(s) not in (0, old_pid), timeout=20)
    assert wait_for(lambda: get(s, "/") == (200, "ok"), timeout=20)


def test_usr2_logs_every_request_in_flight_and_disturbs_none(server):
    s = server
    names = ["wait_in_alpha", "wait_in_beta", "wait_in_gamma"]
    held = [in_thread(lambda n=n: get(s, "/" + n)) for n in names]
    assert s.wait_in_request(3) == 3
    pid = worker_pid(s)
    mark = len(s.log_text())
    os.kill(pid, signal.SIGUSR2)
    needle = "SIGUSR2: 3 requests in flight"
    s.wait_log(needle, timeout=15)

    def dumped():
        log = log_after(s, mark)
        return needle in log and all("in %s\n" % n in log for n in names) and log
    log = wait_for(dumped, timeout=15)
    assert log, log_after(s, mark)
    # First what ran when the signal came (faulthandler: the loop waiting for events), then
    # the loop's own dump, not interleaved.
    assert log.index("Stack (most recent call first):") < log.index(needle), log
    assert not re.search(r"\[stderr\]", log[log.index(needle):]), log
    for n in names:
        # Each core's request, then its stack down to where the app waits.
        assert re.search(r"core \d+: GET /%s for [\d.]+ s, suspended at" % n, log), log
        assert re.search(r'stacks_app.py", line \d+, in %s\n +park\(\)' % n, log), log
    assert log.count('in park\n') >= 3
    # The worker neither died nor stopped serving, and the held requests finish when woken.
    assert worker_pid(s) == pid
    assert get(s, "/") == (200, "ok")
    assert get(s, "/release") == (200, "3")
    for (t, box), n in zip(held, names):
        t.join(15)
        assert box.get("result") == (200, n[len("wait_in_"):]), box
    assert worker_pid(s) == pid


def test_stats_show_what_each_busy_core_serves(server):
    s = server
    t, box = in_thread(lambda: get(s, "/wait_in_beta"))
    assert s.wait_in_request(1) == 1
    cores = [c for c in s.stats()["workers"][0]["cores"] if c["in_request"]]
    assert len(cores) == 1
    c = cores[0]
    assert "REQUEST_METHOD=GET" in c["vars"] and "REQUEST_URI=/wait_in_beta" in c["vars"]
    assert abs(c["req_info"]["request_start"] - time.time()) < 10
    assert get(s, "/release") == (200, "1")
    t.join(15)
    assert box.get("result") == (200, "beta"), box


def test_usr2_stacks_show_whatever_the_log_level(server_factory):
    s = server_factory(APP, workers=1, cores=2, stats_socket=True, log={"level": "error"})
    t, box = in_thread(lambda: get(s, "/wait_in_gamma"))
    assert s.wait_in_request(1) == 1
    os.kill(worker_pid(s), signal.SIGUSR2)
    log = s.wait_log("in wait_in_gamma\n", timeout=15)
    assert "SIGUSR2: 1 request in flight" in log and "in wait_in_gamma\n" in log, log
    assert get(s, "/release") == (200, "1")
    t.join(15)
    assert box.get("result") == (200, "gamma"), box
