"""Process lifecycle seen from outside: graceful TERM, respawn of a killed worker."""
import os
import signal
import threading
import time

from conftest import APPS, BACKEND, Server, wait_for


def test_term_finishes_in_flight_request_and_exits_0(tmp_path):
    server = Server(tmp_path, APPS / "http_app.py", workers=2, cores=10,
                    stats_socket=True).start()
    try:
        result = {}

        def slow():
            result["r"] = server.request("GET", "/sleep?t=3", timeout=20)

        thread = threading.Thread(target=slow)
        thread.start()
        assert server.wait_in_request(1) >= 1  # the request is now suspended in a core
        server.proc.send_signal(signal.SIGTERM)
        thread.join(10)
        assert "r" in result, "in-flight request lost on SIGTERM"
        assert result["r"][0] == 200 and result["r"][2] == b"slept"
        assert server.proc.wait(10) == 0, "master exit status on TERM"
        assert wait_for(lambda: server.group_pids() == [], 10), \
            "processes left after the master exited"
    finally:
        server.stop()


def test_killed_worker_is_respawned(tmp_path):
    server = Server(tmp_path, APPS / "http_app.py", workers=1, cores=10).start()
    try:
        workers = [p for p in server.group_pids() if p != server.pid]
        assert len(workers) == 1, "expected master + 1 worker, got %r" % server.group_pids()
        os.kill(workers[0], signal.SIGKILL)
        assert wait_for(lambda: [p for p in server.group_pids()
                                 if p not in (server.pid, workers[0])], 10, interval=0.1), \
            "no worker respawned within 10 s"
        server.wait_ready()
        server.assert_healthy()
        if BACKEND == "aiowsgi":
            assert str(workers[0]) in server.log_text(), "the dead worker's pid is not logged"
    finally:
        server.stop()


def test_seed_command_line_runs_the_seed_example(tmp_path):
    # SPEC.md: the seed's uWSGI command line works as written.
    from conftest import EXAMPLES, find_master, free_port
    import subprocess
    import urllib.request

    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([find_master(), "--asyncio", "10", "--http-socket",
                             "127.0.0.1:%d" % port, "--greenlet", "--wsgi-file",
                             str(EXAMPLES / "hello.py")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        body = None
        while time.monotonic() < deadline and body is None:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                body = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2).read()
            except OSError:
                time.sleep(0.1)
        assert body == b"Hello World", (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            log.close()
