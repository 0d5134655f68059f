"""[server] preload (SPEC.md "Preload"): the app is imported once per generation in a preload
process; its workers are forked from it but supervised by the master as its own children,
each with its own event loop. Each test starts its own server from an app file it writes
(stopped when the test ends, failed or not: conftest's stop_servers_the_test_started)."""
import os
import signal
import time
from pathlib import Path

import pytest

import test_supervision as sup
from conftest import EXAMPLES, Server, free_port, request_every_core, wait_for

APP = '''
import asyncio, os, random
import aiowsgi

VERSION = "%(version)s"
# One line per import of this file: the tests count the importing processes.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "imports.log"), "a") as f:
    f.write("%%d %%s\\n" %% (os.getpid(), VERSION))

# The import-time loop under preload: a real loop, usable now, closed before workers fork.
IMPORT_LOOP = asyncio.get_event_loop()
IMPORTED_WITH = IMPORT_LOOP.run_until_complete(asyncio.sleep(0, result="ran at import"))
BIG = [("x" * 64 + str(i)) for i in range(%(objects)d)]   # shared copy-on-write under preload


RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    loop = asyncio.get_event_loop()
    if path == "/info":
        # Holds its core until the test creates RELEASE (conftest.request_every_core).
        while not os.path.exists(RELEASE):
            aiowsgi.sleep(0.02)
        # The loop's self-pipe (a socket: its own inode) and its epoll descriptor.
        body = "%%d %%d %%d %%r %%s %%d" %% (
            os.getpid(), os.getppid(), os.fstat(loop._ssock.fileno()).st_ino,
            random.random(), aiowsgi.worker_id(), loop._selector.fileno())
    elif path == "/version":
        body = VERSION
    elif path == "/loop":
        body = "%%s %%s %%s %%s %%s" %% (
            IMPORTED_WITH.replace(" ", "-"), IMPORT_LOOP.is_closed(), loop is not IMPORT_LOOP,
            loop is aiowsgi.loop(), loop.is_running())
    elif path == "/sleep":
        aiowsgi.sleep(float(environ.get("QUERY_STRING") or "0.1"))
        body = "slept"
    else:
        body = "ok"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
'''


def write_app(path, version="v1", broken=False, objects=1000):
    text = APP % {"version": version, "objects": objects}
    if broken:
        text += "\nthis is not python (\n"
    Path(path).write_text(text)


def start(tmp_path, workers=2, cores=2, **kwargs):
    app = tmp_path / "app.py"
    if not app.exists():
        write_app(app)
    server = Server(tmp_path, app, workers=workers, cores=cores, server={"preload": True},
                    stats_socket=True, **kwargs).start()
    server.wait_log("ready (pid", count=workers, timeout=20)
    return server


def imports(tmp_path):
    path = tmp_path / "imports.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]


def infos(server, workers):
    """/info per worker pid, from every worker: its requests are held until each core of each
    worker has one (conftest.request_every_core), so none can be missed."""
    release = Path(server.workdir) / "release"
    release.unlink(missing_ok=True)
    try:
        bodies = request_every_core(server, "/info", release.touch)
    finally:
        release.touch()  # a held request must not outlive a failure here
    seen = {}
    for body in bodies:
        pid, ppid, inode, rnd, wid, epfd = body.decode().split()
        seen.setdefault(int(pid), (int(ppid), int(inode), rnd, int(wid)))
        EPOLL_FDS[int(pid)] = int(epfd)
    assert len(seen) == workers, seen
    return seen


EPOLL_FDS = {}
KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)


def same_open_file(pid1, fd1, pid2, fd2):
    """kcmp(KCMP_FILE): True when the two descriptors share one open file description; None
    when the kernel does not tell (no kcmp, or not permitted)."""
    if KCMP is None:
        return None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(KCMP, pid1, pid2, 0, fd1, fd2)
    return None if r < 0 else r == 0


def live_workers(server):
    """The master's children, as /proc says (the preload process included)."""
    out = []
    for pid in server.group_pids(include_preload=True):
        if pid == server.pid:
            continue
        try:
            stat = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.append((pid, int(stat[1])))
    return out


def preload_pids(server):
    return server.preload_pids()


# ---- one import, workers that are the master's own, each with its own loop ----------------

def test_workers_are_children_of_the_master_and_the_app_is_imported_once(tmp_path):
    server = start(tmp_path, workers=3)
    seen = infos(server, 3)
    assert len(seen) == 3, seen
    importers = imports(tmp_path)
    assert len(importers) == 1, importers  # once for the generation, not once per worker
    import_pid = int(importers[0][0])
    assert import_pid not in seen and import_pid != server.pid
    assert preload_pids(server) == [import_pid]
    for pid, (ppid, _, _, _) in seen.items():
        assert ppid == server.pid, (pid, ppid, server.pid)  # re-parented to the master
    # Each worker's own loop: distinct self-pipes and epoll instances, distinct random
    # sequences.
    assert len({inode for _, inode, _, _ in seen.values()}) == 3, seen
    pids = sorted(seen)
    for a, b in ((pids[0], pids[1]), (pids[1], pids[2]), (pids[0], pids[2])):
        assert same_open_file(a, EPOLL_FDS[a], b, EPOLL_FDS[b]) in (False, None), (a, b)
    # Sanity of the check itself: a descriptor is the same as itself.
    assert same_open_file(pids[0], EPOLL_FDS[pids[0]], pids[0], EPOLL_FDS[pids[0]]) in (True, None)
    assert len({rnd for _, _, rnd, _ in seen.values()}) == 3, seen
    assert sorted(wid for _, _, _, wid in seen.values()) == [1, 2, 3]
    assert server.stop() == 0
    assert not [p for p in live_workers(server)]


def test_import_time_loop_is_a_real_loop_closed_before_the_fork(tmp_path):
    server = start(tmp_path, workers=2)
    for _ in range(6):
        status, _, body = server.request("GET", "/loop")
        # run_until_complete worked at import; that loop is closed; requests see the worker's
        # own running loop, which aiowsgi.loop() returns too.
        assert (status, body) == (200, b"ran-at-import True True True True")
    assert server.request("GET", "/sleep?0.2")[2] == b"slept"
    assert server.stop() == 0


def test_a_killed_worker_is_replaced_from_the_same_preload_process(tmp_path):
    server = start(tmp_path, workers=2)
    seen = infos(server, 2)
    victim = sorted(seen)[0]
    os.kill(victim, signal.SIGKILL)
    assert "respawning" in server.wait_log("respawning", timeout=10)
    assert wait_for(lambda: server.log_text().count("ready (pid") >= 3, timeout=15)
    after = wait_for(lambda: (lambda s: s if len(s) == 2 and victim not in s else None)(
        infos(server, 2)), timeout=15)
    assert after and victim not in after, after
    for ppid, _, _, _ in after.values():
        assert ppid == server.pid
    assert len(imports(tmp_path)) == 1, imports(tmp_path)  # no new import for a respawn
    assert "signal 9" in server.log_text()
    assert server.stop() == 0


def test_a_killed_preload_process_is_replaced_and_serving_goes_on(tmp_path):
    server = start(tmp_path, workers=2)
    first = preload_pids(server)
    assert len(first) == 1
    os.kill(first[0], signal.SIGKILL)
    assert wait_for(lambda: len(preload_pids(server)) == 2, timeout=15), server.log_text()
    assert "starting a new one" in server.log_text()
    for _ in range(10):
        assert server.request("GET", "/version")[2] == b"v1"
    # The new preload process serves respawns: kill a worker, it comes back.
    assert wait_for(lambda: len(imports(tmp_path)) == 2, timeout=15)
    victim = sorted(infos(server, 2))[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: server.log_text().count("ready (pid") >= 3, timeout=15)
    assert server.stop() == 0


def test_a_stopped_preload_process_does_not_stall_the_master(tmp_path):
    # kill -STOP on the preload process, then a worker dies: the master asks the stopped
    # process for a replacement. Its loop must not wait for the answer: signals, reaping and
    # the stats socket go on, and TERM stops everything (the stopped process included)
    # without starting another preload process.
    server = start(tmp_path, workers=2)
    (preload,) = preload_pids(server)
    victim = server.stats()["workers"][0]["pid"]
    os.kill(preload, signal.SIGSTOP)
    try:
        os.kill(victim, signal.SIGKILL)
        assert "respawning" in server.wait_log("respawning", timeout=10)
        # The fork request is out (the slot waits for it) while the master keeps answering.
        for _ in range(5):
            t0 = time.monotonic()
            doc = server.stats()
            assert time.monotonic() - t0 < 2.0, "the stats socket took %.1f s" % (
                time.monotonic() - t0)
            assert [w for w in doc["workers"] if w["pid"] != victim]
            time.sleep(0.2)  # the point: the master keeps answering over a second, not once
        # Reaped, not left a zombie by a master waiting on the stopped process.
        assert wait_for(lambda: not Path("/proc/%d" % victim).exists() or
                        Path("/proc/%d/stat" % victim).read_text().rsplit(")", 1)[1].split()[0]
                        != "Z", timeout=5)
        t0 = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        server.proc.wait(timeout=20)
        took = time.monotonic() - t0
        # graceful_timeout is 5 s: stopping must not wait for it, let alone the fork timeout.
        assert took < 4.0, "TERM took %.1f s" % took
        assert server.proc.returncode == 0
        assert preload_pids(server) == [preload], server.log_text()[-3000:]
    finally:
        try:
            os.kill(preload, signal.SIGCONT)
        except ProcessLookupError:
            pass


# ---- reloads --------------------------------------------------------------------------------

def test_hup_under_load_drops_nothing_and_imports_the_new_code_once(tmp_path):
    server = start(tmp_path, workers=2, cores=10)
    old_workers = set(infos(server, 2))
    load = sup.Load(server.port)
    load.start()
    try:
        assert wait_for(lambda: load.sent >= 50, timeout=15), "the load never got going"
        write_app(tmp_path / "app.py", version="v2")
        os.kill(server.pid, signal.SIGHUP)
        assert "reload complete" in server.wait_log("reload complete", timeout=30)
        assert wait_for(lambda: not ({p for p, _ in live_workers(server)} & old_workers),
                            timeout=15)
        # The new generation serves some of the load too before it stops.
        at_switch = load.sent
        assert wait_for(lambda: load.sent >= max(200, at_switch + 50), timeout=15)
    finally:
        load.stop()
    print("HUP under load with preload: %d requests sent, %d failed"
          % (load.sent, len(load.failures)))
    assert load.sent >= 200, load.sent
    assert load.failures == [], load.failures[:10]
    assert server.request("GET", "/version")[2] == b"v2"
    # One import per generation; the old preload process is gone.
    assert [v for _, v in imports(tmp_path)] == ["v1", "v2"]
    new_preload = int(imports(tmp_path)[1][0])
    assert wait_for(lambda: {p for p, _ in live_workers(server)} ==
                        set(infos(server, 2)) | {new_preload}, timeout=15)
    assert server.stop() == 0


def test_hup_with_a_broken_edit_keeps_the_old_generation(tmp_path):
    server = start(tmp_path, workers=2)
    old = set(infos(server, 2))
    write_app(tmp_path / "app.py", version="v2", broken=True)
    os.kill(server.pid, signal.SIGHUP)
    log = server.wait_log("the previous generation keeps serving", timeout=30)
    assert "reload failed" in log
    assert "SyntaxError" in log and "Traceback" in log, log[-3000:]
    for _ in range(20):
        assert server.request("GET", "/version")[2] == b"v1"
    assert set(infos(server, 2)) == old
    # Fixed, the next HUP goes through; respawns between come from the old preload process.
    write_app(tmp_path / "app.py", version="v3")
    os.kill(server.pid, signal.SIGHUP)
    assert "reload complete" in server.wait_log("reload complete", timeout=30)
    assert wait_for(lambda: server.request("GET", "/version")[2] == b"v3")
    assert server.stop() == 0


def test_an_import_error_at_start_exits_3_with_the_traceback(tmp_path):
    app = tmp_path / "app.py"
    write_app(app, broken=True)
    server = Server(tmp_path, app, workers=2, server={"preload": True})
    server.port = free_port()
    server.config_path.write_text(server.config_text())
    import subprocess
    proc = subprocess.run(server.command(), cwd=str(tmp_path), capture_output=True, timeout=30)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 3, out
    assert "SyntaxError" in out and "Traceback" in out, out
    assert "worker 1 started" not in out  # no worker was forked


# ---- the seed examples, Flask and Django, unchanged ------------------------------------------

def test_seed_examples_run_unchanged(server_factory):
    server = server_factory(EXAMPLES / "seed_app.py", workers=2, cores=10,
                            server={"preload": True})
    for path, body in (("/callback", b"Hello World"), ("/suspend", None), ("/generator", None),
                       ("/task", None), ("/future", None)):
        status, _, got = server.request("GET", path, timeout=20)
        assert status == 200, (path, got)
        if body is not None:
            assert got == body, (path, got)
        else:
            assert got, path


@pytest.mark.parametrize("name,app", [("Flask", EXAMPLES / "flask_app.py"),
                                      ("Django", EXAMPLES / "django_app" / "wsgi.py")])
def test_frameworks_run_unchanged(server_factory, name, app):
    server = server_factory(app, workers=2, cores=10, server={"preload": True})
    status, _, body = server.request("GET", "/")
    assert (status, body) == (200, ("Hello from %s" % name).encode())
    status, _, body = server.request("GET", "/hello/world")
    assert (status, body) == (200, b"Hello, world!")
    assert "preload: application imported" in server.log_text()


# ---- memory ---------------------------------------------------------------------------------

def pss_kb(pid):
    for line in Path("/proc/%d/smaps_rollup" % pid).read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise AssertionError("no Pss in smaps_rollup of %d" % pid)


def workers_pss(server, n):
    for _ in range(20 * n):  # warm the workers a little, as a served app would be
        server.request("GET", "/")
    preloads = set(preload_pids(server))
    pids = sorted(p for p, ppid in live_workers(server) if ppid == server.pid and p not in preloads)
    assert len(pids) == n, (pids, preloads)
    return sum(pss_kb(pid) for pid in pids), pids


def test_preload_shares_memory_pss_of_4_django_workers(tmp_path_factory):
    if not Path("/proc/self/smaps_rollup").exists():
        pytest.skip("no /proc/PID/smaps_rollup on this kernel")
    results = {}
    for preload in (False, True):
        workdir = tmp_path_factory.mktemp("pss_preload" if preload else "pss_plain")
        server = Server(workdir, EXAMPLES / "django_app" / "wsgi.py", workers=4, cores=10,
                        server={"preload": preload}).start()
        try:
            server.wait_log("ready (pid", count=4, timeout=30)
            # The four workers are the master's children before their memory is measured.
            preloads = set(preload_pids(server))
            assert wait_for(lambda: len([p for p, ppid in live_workers(server)
                                         if ppid == server.pid and p not in preloads]) == 4,
                            timeout=15), server.log_text()[-3000:]
            results[preload], _ = workers_pss(server, 4)
        finally:
            server.stop()
    print("Django, 4 workers, sum of worker PSS: without preload %d KiB, with preload %d KiB "
          "(%.2f x)" % (results[False], results[True], results[True] / results[False]))
    assert results[True] < 0.8 * results[False], results
