"""Access log: one line per request, text or JSON ([log] format), to the [log] file, which
is reopened on SIGUSR1 after logrotate moved it."""
import json
import os
import re
import signal
import time

from conftest import APPS, Server

APP = APPS / "obs_app.py"


def wait_lines(path, predicate, timeout=5.0, count=1):
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
        time.sleep(0.3)
        assert "[access]" not in q.log_text()
    finally:
        q.stop()


def test_log_file_is_reopened_on_sigusr1(tmp_path):
    log_file = tmp_path / "aiowsgi.log"
    s = Server(tmp_path, APP, workers=2, cores=2, log={"file": str(log_file)}).start()
    try:
        s.request("GET", "/status/201")
        assert wait_lines(log_file, lambda l: "/status/201" in l)
        rotated = tmp_path / "aiowsgi.log.1"
        os.rename(log_file, rotated)  # what logrotate does before postrotate
        os.kill(s.pid, signal.SIGUSR1)
        assert wait_lines(log_file, lambda l: "log files reopened" in l)
        # Each worker reopens when the master's message reaches it, and says so.
        assert len(wait_lines(log_file, lambda l: "worker log files reopened" in l, count=2)) == 2
        for _ in range(4):  # reaches both workers
            s.request("GET", "/status/202")
        new = wait_lines(log_file, lambda l: "[access]" in l and "/status/202" in l, count=4)
        assert len(new) == 4
        assert "/status/202" not in rotated.read_text()
        assert "/status/201" in rotated.read_text()
    finally:
        s.stop()
