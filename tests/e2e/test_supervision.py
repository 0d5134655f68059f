"""Supervision end to end: real signals to a real master (SPEC.md "Signals to the master",
[limits]). Each test starts its own server from an app file it writes, because several
edit the app or the config and reload."""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


from conftest import Server, find_master, free_port, toml_value, wait_for

APP = '''
import os, time
import aiowsgi

VERSION = "%(version)s"
GROWN = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    arg = environ.get("QUERY_STRING", "")
    status = "200 OK"
    if path == "/pid":
        body = str(os.getpid())
    elif path == "/version":
        body = VERSION
    elif path == "/ids":
        body = "%%d %%d %%d" %% (os.getpid(), os.getuid(), os.getgid())
    elif path == "/sleep":          # suspends only this core
        aiowsgi.sleep(float(arg))
        body = "slept " + arg
    elif path == "/block":          # blocks the whole loop
        time.sleep(float(arg))
        body = "blocked " + arg
    elif path == "/grow":           # touches N MB that stay allocated
        GROWN.append(b"\\x01" * (int(arg) * 1024 * 1024))
        body = "grown"
    else:
        body = "ok"
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''


def write_app(path, version="v1", broken=False):
    text = APP % {"version": version}
    if broken:
        text += "\nthis is not python (\n"
    Path(path).write_text(text)


def start(tmp_path, **kwargs):
    app = tmp_path / "app.py"
    if not app.exists():
        write_app(app)
    server = Server(tmp_path, app, **kwargs).start()
    # Every worker ready, not only the first that answered: signals below must find a
    # running generation.
    n = kwargs.get("workers", 1)
    server.wait_log("ready (pid", count=n, timeout=15)
    return server


def get(server, path, timeout=15):
    status, _, body = server.request("GET", path, timeout=timeout)
    return status, body.decode()


def worker_pids(server):
    return sorted(p for p in server.group_pids() if p != server.pid)


def pids_seen(server, n=30):
    return {int(get(server, "/pid")[1]) for _ in range(n)}


# ---- HUP ---------------------------------------------------------------------------------

class Load:
    """Client threads sending requests over new and keep-alive connections until stopped."""

    def __init__(self, port, threads=4, keepalive_batch=10):
        self.port, self.threads, self.batch = port, threads, keepalive_batch
        self.sent = self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.workers = []

    def _record(self, ok, what=None):
        with self.lock:
            self.sent += 1
            if ok:
                self.ok += 1
            else:
                self.failures.append(what)

    def _one(self, conn):
        try:
            conn.request("GET", "/version")
            resp = conn.getresponse()
            body = resp.read()
            ok = resp.status == 200 and body in (b"v1", b"v2")
            self._record(ok, None if ok else "status %d %r" % (resp.status, body))
            return resp.getheader("Connection", "").lower() != "close"
        except (OSError, http.client.HTTPException) as e:
            self._record(False, repr(e))
            return False

    def _run(self, keepalive):
        while not self.stop_flag.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                for _ in range(self.batch if keepalive else 1):
                    if self.stop_flag.is_set() or not self._one(conn):
                        break
            finally:
                conn.close()
            time.sleep(0.005)

    def start(self):
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True)
            t.start()
            self.workers.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.workers:
            t.join(30)


def test_hup_under_load_drops_nothing_and_serves_the_new_code(tmp_path):
    server = start(tmp_path, workers=2, cores=10)
    before = pids_seen(server)
    old_workers = set(worker_pids(server))
    load = Load(server.port)
    load.start()
    try:
        # The load is running (requests answered) before the reload, not after a fixed wait.
        assert wait_for(lambda: load.ok >= 100, timeout=30), (load.sent, load.failures[:5])
        write_app(tmp_path / "app.py", version="v2")
        os.kill(server.pid, signal.SIGHUP)
        log = server.wait_log("reload complete", timeout=20)
        assert "reload complete" in log
        # Let the old generation finish draining under load.
        assert wait_for(lambda: not (set(worker_pids(server)) & old_workers), timeout=15)
        # And keeps running against the new generation alone for a while.
        drained_at = load.ok
        assert wait_for(lambda: load.ok >= drained_at + 100, timeout=30), load.failures[:5]
    finally:
        load.stop()
    print("HUP under load: %d requests sent, %d failed" % (load.sent, len(load.failures)))
    assert load.sent >= 200, load.sent
    assert load.failures == [], load.failures[:10]
    after = pids_seen(server)
    assert not (after & before), (before, after)
    assert get(server, "/version") == (200, "v2")
    assert server.stop() == 0


def test_hup_with_a_broken_app_keeps_the_old_workers(tmp_path):
    server = start(tmp_path, workers=2)
    old = set(worker_pids(server))
    write_app(tmp_path / "app.py", version="v2", broken=True)
    os.kill(server.pid, signal.SIGHUP)
    log = server.wait_log("the previous generation keeps serving", timeout=20)
    assert "reload failed" in log
    assert "SyntaxError" in log and "Traceback" in log, log[-3000:]
    for _ in range(20):
        assert get(server, "/version") == (200, "v1")
    assert set(worker_pids(server)) == old
    # Fixed, a second HUP goes through.
    write_app(tmp_path / "app.py", version="v3")
    os.kill(server.pid, signal.SIGHUP)
    assert "reload complete" in server.wait_log("reload complete", timeout=20)
    assert wait_for(lambda: get(server, "/version") == (200, "v3"))
    assert server.stop() == 0


def test_hup_with_an_invalid_config_keeps_serving(tmp_path):
    server = start(tmp_path, workers=2)
    old = set(worker_pids(server))
    good = server.config_path.read_text()
    bad = good.replace("workers = 2", "workers = 0")
    assert bad != good
    server.config_path.write_text(bad)
    os.kill(server.pid, signal.SIGHUP)
    log = server.wait_log("the previous generation keeps serving", timeout=10)
    assert "reload failed (configuration errors)" in log
    line = 1 + bad.splitlines().index("workers = 0")
    assert "server.toml:%d:" % line in log, log[-2000:]
    for _ in range(10):
        assert get(server, "/version") == (200, "v1")
    assert set(worker_pids(server)) == old
    assert server.stop() == 0


def test_hup_applies_listener_changes(tmp_path):
    server = start(tmp_path, workers=1)
    extra = free_port()
    cfg = server.config_path.read_text()
    listen_line = 'listen = ["127.0.0.1:%d"]' % server.port
    assert listen_line in cfg
    server.config_path.write_text(cfg.replace(
        listen_line, 'listen = ["127.0.0.1:%d", "127.0.0.1:%d"]' % (server.port, extra)))
    os.kill(server.pid, signal.SIGHUP)
    assert "reload complete" in server.wait_log("reload complete", timeout=20)
    conn = http.client.HTTPConnection("127.0.0.1", extra, timeout=5)
    conn.request("GET", "/version")
    assert conn.getresponse().read() == b"v1"
    conn.close()
    # Removed again: the port closes once the reload completes, the first one keeps serving.
    server.config_path.write_text(cfg)
    os.kill(server.pid, signal.SIGHUP)
    assert "closed listener 127.0.0.1:%d" % extra in server.wait_log(
        "closed listener 127.0.0.1:%d" % extra, timeout=20)
    assert wait_for(lambda: _refused(extra), timeout=10)
    assert get(server, "/version") == (200, "v1")
    assert server.stop() == 0


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


# ---- TERM, KILL, TTIN/TTOU -----------------------------------------------------------------

def _in_thread(fn):
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as e:  # reported by the assertion on box below
            box["error"] = repr(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_term_finishes_a_2s_request_and_exits_0(tmp_path):
    server = start(tmp_path, workers=1, stats_socket=True)
    t, box = _in_thread(lambda: get(server, "/sleep?2"))
    assert server.wait_in_request(1) == 1
    os.kill(server.pid, signal.SIGTERM)
    t.join(10)
    assert box.get("result") == (200, "slept 2"), box
    assert server.proc.wait(10) == 0


def test_killed_worker_is_respawned_and_logged(tmp_path):
    server = start(tmp_path, workers=2)
    victim = worker_pids(server)[0]
    os.kill(victim, signal.SIGKILL)
    log = server.wait_log("perhaps out of memory", timeout=10)
    assert "(pid %d) killed by signal 9 (SIGKILL)" % victim in log
    assert wait_for(lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server))
    for _ in range(20):
        assert get(server, "/version") == (200, "v1")
    assert server.stop() == 0


def test_ttin_and_ttou_change_the_worker_count(tmp_path):
    server = start(tmp_path, workers=1)
    assert len(worker_pids(server)) == 1
    os.kill(server.pid, signal.SIGTTIN)
    assert wait_for(lambda: len(worker_pids(server)) == 2)
    assert "worker 2 ready (pid" in server.wait_log("worker 2 ready (pid")
    os.kill(server.pid, signal.SIGTTOU)
    assert wait_for(lambda: len(worker_pids(server)) == 1)
    os.kill(server.pid, signal.SIGTTOU)  # never below 1
    assert "SIGTTOU ignored" in server.wait_log("SIGTTOU ignored")
    # The master decides before it logs: the one worker left is the same process, serving.
    only = worker_pids(server)
    assert len(only) == 1
    assert get(server, "/pid") == (200, str(only[0]))
    assert worker_pids(server) == only
    assert get(server, "/version") == (200, "v1")
    assert server.stop() == 0


# ---- limits --------------------------------------------------------------------------------

def test_max_requests_recycles_without_failing_a_request_in_flight(tmp_path):
    server = start(tmp_path, workers=1, cores=10, limits={"max_requests": 5}, stats_socket=True)
    first = worker_pids(server)
    t, box = _in_thread(lambda: get(server, "/sleep?3"))
    assert server.wait_in_request(1) == 1
    statuses = [get(server, "/pid")[0] for _ in range(12)]
    assert statuses == [200] * 12
    log = server.wait_log("max_requests 5", timeout=10)
    assert "starting a replacement" in log
    t.join(15)
    assert box.get("result") == (200, "slept 3"), box
    assert wait_for(lambda: not (set(worker_pids(server)) & set(first)), timeout=15)
    assert get(server, "/version") == (200, "v1")
    assert server.stop() == 0


def test_reload_on_rss_recycles_a_grown_worker(tmp_path):
    server = start(tmp_path, workers=1, limits={"reload_on_rss_mb": 120})
    first = worker_pids(server)
    assert get(server, "/grow?150") == (200, "grown")
    log = server.wait_log("reload_on_rss_mb 120", timeout=10)
    assert "starting a replacement" in log
    assert wait_for(lambda: worker_pids(server) and not (set(worker_pids(server)) & set(first)))
    assert get(server, "/version") == (200, "v1")
    assert server.stop() == 0


def test_harakiri_cancels_only_the_suspended_request(tmp_path):
    server = start(tmp_path, workers=1, cores=10, limits={"harakiri": 1}, stats_socket=True)
    pid = worker_pids(server)
    slow_t, slow = _in_thread(lambda: get(server, "/sleep?10"))
    assert server.wait_in_request(1) == 1
    fine_t, fine = _in_thread(lambda: get(server, "/sleep?0.5"))
    fine_t.join(10)
    assert fine.get("result") == (200, "slept 0.5"), fine
    slow_t.join(15)
    assert slow.get("result", (None,))[0] == 504, slow
    assert worker_pids(server) == pid  # the worker was not replaced
    assert get(server, "/version") == (200, "v1")
    assert "GET /sleep?10" in server.log_text()
    assert server.stop() == 0


def test_harakiri_replaces_a_worker_whose_loop_is_blocked(tmp_path):
    server = start(tmp_path, workers=1, cores=10, limits={"harakiri": 1})
    pid = worker_pids(server)
    t, box = _in_thread(lambda: get(server, "/block?30", timeout=30))
    log = server.wait_log("(blocking the loop)", timeout=10)
    assert "worker 1 harakiri: request stuck for" in log
    assert "GET /block?30" in log
    t.join(10)
    assert "error" in box or box["result"][0] != 200, box  # that request is lost, by design
    assert wait_for(lambda: worker_pids(server) and worker_pids(server) != pid)
    assert wait_for(lambda: get(server, "/version") == (200, "v1"))
    assert server.stop() == 0


# ---- pidfile, privileges, start-up failure -------------------------------------------------

def test_pidfile_written_after_start_and_removed_at_exit(tmp_path):
    pidfile = tmp_path / "master.pid"
    server = start(tmp_path, server={"pidfile": str(pidfile)})
    assert pidfile.read_text() == "%d\n" % server.pid
    assert server.stop() == 0
    assert not pidfile.exists()


def test_user_and_group_are_dropped_after_binding(tmp_path):
    import pwd
    import grp
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    if os.geteuid() == 0:
        # Workers run the app as nobody: the app file must be readable by it. Not under
        # pytest's own folder: a pytest starting meanwhile (ctest runs modules side by side)
        # makes that private again.
        workdir = Path(tempfile.mkdtemp(prefix="aiowsgi-user-test-"))
        try:
            os.chmod(workdir, 0o755)
            server = start(workdir, workers=1, server={"user": "nobody", "group": group})
            pid, uid, gid = map(int, get(server, "/ids")[1].split())
            assert (uid, gid) == (nobody.pw_uid, nobody.pw_gid)
            status = Path("/proc/%d/status" % server.pid).read_text()
            assert "Uid:\t%d\t%d" % (nobody.pw_uid, nobody.pw_uid) in status
            assert server.stop() == 0
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    else:
        # Not root: another user cannot be taken; the master refuses to start (exit 1).
        app = tmp_path / "app.py"
        write_app(app)
        cfg = tmp_path / "server.toml"
        cfg.write_text('[server]\nlisten = ["127.0.0.1:0"]\nworkers = 1\nuser = "nobody"\n'
                       '[app]\nwsgi_file = %s\n' % toml_value(str(app)))
        r = subprocess.run([find_master(), "-c", str(cfg)], capture_output=True, text=True,
                           timeout=20)
        assert r.returncode == 1
        assert "needs root" in r.stderr + r.stdout


def test_import_error_at_startup_exits_non_zero_with_the_traceback(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("import os\nraise RuntimeError('the app refuses to load')\n")
    cfg = tmp_path / "server.toml"
    cfg.write_text('[server]\nlisten = ["127.0.0.1:0"]\nworkers = 2\n'
                   '[app]\nwsgi_file = %s\n' % toml_value(str(app)))
    r = subprocess.run([find_master(), "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "Traceback" in out and "RuntimeError: the app refuses to load" in out, out
    assert "the first generation cannot start" in out
