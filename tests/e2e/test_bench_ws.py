"""bench/run's websocket workloads work: bench/ws_client.py against bench/apps/ws.py (echo,
broadcast, idle), briefly and with a few connections. Counts only, no speed."""
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO

BENCH = REPO / "bench"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(BENCH / "apps" / "ws.py", workers=1, cores=40)


def run_client(server, mode, connections, duration=0.5):
    client = subprocess.Popen(
        [sys.executable, str(BENCH / "ws_client.py"), mode, "--port", str(server.port),
         "--connections", str(connections), "--procs", "2", "--duration", str(duration)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(client.stdout.readline())
        client.stdin.write("go\n")
        client.stdin.flush()
        result = json.loads(client.stdout.readline())
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return ready, result


def test_echo(srv):
    ready, result = run_client(srv, "echo", 6)
    assert (ready["ready"], ready["errors"]) == (6, [])
    assert result["errors"] == []
    assert result["messages"] >= 6  # every connection had at least one echo, checked bytewise
    assert result["p99_ms"] is not None
    srv.assert_healthy()


def test_broadcast_reaches_every_receiver_each_round(srv):
    ready, result = run_client(srv, "bcast", 10)
    assert (ready["ready"], ready["errors"]) == (10, [])
    assert result["errors"] == []
    assert result["rounds"] >= 1
    assert result["messages"] == 10 * result["rounds"]
    srv.assert_healthy()


def test_idle(srv):
    ready, result = run_client(srv, "idle", 8)
    assert (ready["ready"], ready["errors"]) == (8, [])
    assert result["messages"] == 8
    srv.assert_healthy()


def test_loopback_send_floor_reports_cpu_per_send():
    # bench/loopback_send_floor.py: the kernel's cost of one send per receiver, no server.
    out = subprocess.run(
        [sys.executable, str(BENCH / "loopback_send_floor.py"), "--receivers", "20",
         "--rounds", "3"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"receivers 20, sends 60: user ([\d.]+) us/send, system ([\d.]+) us/send\n",
                     out.stdout)
    assert m, out.stdout


def test_bench_run_never_picks_a_sanitizer_or_fuzzing_build(tmp_path):
    # bench/run's default binary: the newest build*/aiowsgi-master, but not tests/sanitizers/
    # run's build-asan or a fuzzing build, which are newer after those runs.
    import importlib.util
    from importlib.machinery import SourceFileLoader
    loader = SourceFileLoader("bench_run", str(BENCH / "run"))
    bench_run = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_run", loader))
    loader.exec_module(bench_run)
    caches = {"build": "AIOWSGI_SANITIZE:STRING=\nAIOWSGI_FUZZ:BOOL=OFF\n",
              "build-asan": "AIOWSGI_SANITIZE:STRING=address,undefined\n",
              "build-fuzz": "AIOWSGI_SANITIZE:STRING=\nAIOWSGI_FUZZ:BOOL=ON\n"}
    for name, text in caches.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "CMakeCache.txt").write_text(text)
    assert not bench_run.instrumented(str(tmp_path / "build" / "aiowsgi-master"))
    assert bench_run.instrumented(str(tmp_path / "build-asan" / "aiowsgi-master"))
    assert bench_run.instrumented(str(tmp_path / "build-fuzz" / "aiowsgi-master"))
    assert not bench_run.instrumented(str(tmp_path / "none" / "aiowsgi-master"))
