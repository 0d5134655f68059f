"""aiowsgi-top: --once prints a table, --once --json the raw document, and the live view
renders a screen (run inside tmux) and quits on q."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_tool
from obs_helpers import StatsServer, background_requests, wait_for

TOP = str(REPO / "tools" / "aiowsgi-top")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = StatsServer(tmp_path_factory.mktemp("top"), workers=2, cores=3, metrics=False).start()
    assert wait_for(lambda: all(w["accepting"] for w in s.stats()["workers"]), timeout=10)
    yield s
    s.stop()


def run_top(*args):
    return subprocess.run([TOP, *args], capture_output=True, text=True, timeout=20)


def test_once_table(srv):
    for _ in range(5):
        srv.request("GET", "/")
    threads = background_requests(srv, "/slow?s=2", 1)
    assert wait_for(lambda: any(w["status"] == "busy" for w in srv.stats()["workers"]), timeout=3)
    r = run_top("--once", srv.stats_addr)
    for t in threads:
        t.join()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("aiowsgi ") and "pid %d" % srv.pid in lines[0]
    header = [l for l in lines if l.startswith("WID ")]
    assert header and "REQ" in header[0] and "RSS" in header[0]
    pids = {w["pid"] for w in srv.stats()["workers"]}
    rows = [l.split() for l in lines if l.split() and l.split()[0] in ("1", "2")
            and len(l.split()) > 5]
    assert {int(r[1]) for r in rows} >= pids
    assert sum(int(r[3]) for r in rows if int(r[1]) in pids) >= 5
    assert any("GET /slow?s=2" in l for l in lines), r.stdout


def test_once_json(srv):
    r = run_top("--once", "--json", srv.stats_addr)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["pid"] == srv.pid and len(doc["workers"]) == 2


def test_unreachable_address_fails_cleanly(tmp_path):
    r = run_top("--once", "unix:" + str(tmp_path / "nothing.sock"))
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_live_view_under_tmux(srv):
    require_tool("tmux")
    sock = "aiowsgi-top-test-%d" % os.getpid()
    tmux = ["tmux", "-L", sock]
    env = dict(os.environ, TERM="xterm")
    subprocess.run(tmux + ["new-session", "-d", "-s", "top", "-x", "160", "-y", "40",
                           "%s %s %s" % (sys.executable, TOP, srv.stats_addr)],
                   check=True, env=env, timeout=10)
    try:
        def screen():
            out = subprocess.run(tmux + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                                 text=True, timeout=10, env=env).stdout
            return out if "WID" in out else None

        first = wait_for(screen, timeout=10, interval=0.2)
        assert first, "aiowsgi-top drew no table"
        assert "pid %d" % srv.pid in first
        for w in srv.stats()["workers"]:
            assert str(w["pid"]) in first
        # It refreshes: new traffic shows up without a key press.
        before = srv.stats()
        for _ in range(20):
            srv.request("GET", "/")
        total = sum(w["requests"] for w in before["workers"]) + 20
        assert wait_for(lambda: (lambda s: s and "%d requests" % total in s)(screen()),
                        timeout=5, interval=0.3)
        subprocess.run(tmux + ["send-keys", "-t", "top", "q"], check=True, env=env, timeout=10)
        gone = wait_for(lambda: subprocess.run(tmux + ["has-session", "-t", "top"],
                                               capture_output=True, env=env).returncode != 0,
                        timeout=5)
        assert gone, "aiowsgi-top did not quit on q"
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True, env=env)
