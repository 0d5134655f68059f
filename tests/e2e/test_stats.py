"""The stats socket: one JSON document per connection, in uWSGI's stats-server layout, with
figures that move with the traffic (SPEC.md "Stats socket")."""
import os
import signal
import socket
import time

import pytest

from obs_helpers import StatsServer, background_requests, read_stats, wait_for

TOP_KEYS = {"version": str, "listen_queue": int, "listen_queue_errors": int, "signal_queue": int,
            "load": int, "pid": int, "uid": int, "gid": int, "cwd": str, "locks": list,
            "sockets": list, "workers": list}
SOCKET_KEYS = {"name": str, "proto": str, "queue": int, "max_queue": int, "shared": int,
               "can_offload": int}
WORKER_KEYS = {"id": int, "pid": int, "accepting": int, "requests": int, "delta_requests": int,
               "exceptions": int, "harakiri_count": int, "signals": int, "signal_queue": int,
               "status": str, "rss": int, "vsz": int, "running_time": int, "last_spawn": int,
               "respawn_count": int, "tx": int, "avg_rt": int, "apps": list, "cores": list}
CORE_KEYS = {"id": int, "requests": int, "static_requests": int, "routed_requests": int,
             "offloaded_requests": int, "write_errors": int, "read_errors": int,
             "in_request": int, "vars": list, "req_info": dict}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = StatsServer(tmp_path_factory.mktemp("stats"), workers=2, cores=3).start()
    # The server answers once one worker is ready; the tests want both.
    assert wait_for(lambda: all(w["accepting"] for w in s.stats()["workers"]), timeout=10)
    yield s
    s.stop()


def check_types(obj, spec, where):
    for key, typ in spec.items():
        assert key in obj, "%s: missing %r in %r" % (where, key, sorted(obj))
        assert isinstance(obj[key], typ) and not (typ is int and isinstance(obj[key], bool)), \
            "%s.%s = %r is not %s" % (where, key, obj[key], typ.__name__)


def total(doc, key):
    return sum(w[key] for w in doc["workers"])


def test_every_key_with_its_type(srv):
    doc = srv.stats()
    check_types(doc, TOP_KEYS, "top")
    assert doc["pid"] == srv.pid
    assert doc["uid"] == os.getuid() and doc["gid"] == os.getgid()
    assert doc["cwd"] == str(srv.workdir)
    assert len(doc["sockets"]) == 1
    check_types(doc["sockets"][0], SOCKET_KEYS, "socket")
    assert doc["sockets"][0]["name"] == "127.0.0.1:%d" % srv.port
    assert doc["sockets"][0]["proto"] == "http"
    assert doc["sockets"][0]["max_queue"] > 0
    assert [w["id"] for w in doc["workers"]] == [1, 2]
    pids = set(srv.group_pids())
    for w in doc["workers"]:
        check_types(w, WORKER_KEYS, "worker %d" % w["id"])
        assert w["pid"] in pids and w["pid"] != srv.pid
        assert w["accepting"] == 1
        assert w["status"] in ("idle", "busy")
        assert w["rss"] > 1 << 20 and w["vsz"] >= w["rss"]
        assert abs(w["last_spawn"] - time.time()) < 120
        assert len(w["cores"]) == 3
        for c in w["cores"]:
            check_types(c, CORE_KEYS, "core")


def test_requests_and_tx_increase_after_traffic(srv):
    before = srv.stats()
    for _ in range(10):
        status, _, _ = srv.request("GET", "/")
        assert status == 200
    srv.request("GET", "/boom")
    # A worker records a request just after its response went out: the client may ask first.
    # SPEC: figures are at most one second old (5 s: a loaded machine).
    deadline = time.monotonic() + 5.0
    after = srv.stats()
    while total(after, "requests") - total(before, "requests") < 11 and time.monotonic() < deadline:
        time.sleep(0.05)
        after = srv.stats()
    assert total(after, "requests") - total(before, "requests") == 11
    assert total(after, "exceptions") - total(before, "exceptions") == 1
    assert total(after, "tx") - total(before, "tx") > 11 * 50
    assert sum(c["requests"] for w in after["workers"] for c in w["cores"]) == \
        total(after, "requests")
    assert any(w["avg_rt"] > 0 and w["running_time"] > 0 for w in after["workers"])
    # delta_requests covers the last second: traffic shows up within a tick or two.
    srv.request("GET", "/")
    assert wait_for(lambda: total(srv.stats(), "delta_requests") > 0, timeout=10)


def test_busy_while_a_suspended_request_is_in_flight(srv):
    threads = background_requests(srv, "/slow?s=2", 1)

    def busy_core():
        for w in srv.stats()["workers"]:
            for c in w["cores"]:
                if c["in_request"]:
                    return w, c
        return None

    found = wait_for(busy_core, timeout=10, interval=0.05)
    assert found, "no core in a request while /slow runs"
    w, c = found
    assert w["status"] == "busy"
    assert "REQUEST_URI=/slow?s=2" in c["vars"]
    assert abs(c["req_info"]["request_start"] - time.time()) < 5
    for t in threads:
        t.join()
    assert wait_for(lambda: all(w["status"] == "idle" for w in srv.stats()["workers"]), timeout=10)


def test_respawn_count_after_a_worker_is_killed(srv):
    doc = srv.stats()
    victim = doc["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced():
        w = srv.stats()["workers"][0]
        return w if w["pid"] not in (0, victim["pid"]) and w["accepting"] else None

    w = wait_for(replaced, timeout=10)
    assert w, "worker 1 was not respawned"
    assert w["respawn_count"] == victim["respawn_count"] + 1
    assert w["requests"] == 0  # counters belong to the process


def test_listen_queue_while_every_core_is_busy(tmp_path):
    s = StatsServer(tmp_path, workers=1, cores=2, metrics=False).start()
    try:
        threads = background_requests(s, "/slow?s=3", 2)
        # Both cores in their request (not a fixed wait for the second to get there).
        assert wait_for(lambda: sum(c["in_request"] for c in s.stats()["workers"][0]["cores"])
                        == 2, timeout=10)
        waiting = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
        for c in waiting:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        doc = wait_for(lambda: (lambda d: d if d["listen_queue"] > 0 else None)(s.stats()),
                       timeout=10)
        assert doc, "listen_queue stayed 0 with every core busy"
        assert doc["sockets"][0]["queue"] == doc["listen_queue"] >= 1
        assert sum(c["in_request"] for c in doc["workers"][0]["cores"]) == 2
        # The queued requests are served once the cores are free.
        for c in waiting:
            c.settimeout(10)
            assert c.recv(100).startswith(b"HTTP/1.1 200")
            c.close()
        for t in threads:
            t.join()
    finally:
        s.stop()


def test_unix_stats_socket_answers_during_a_reload(tmp_path):
    s = StatsServer(tmp_path, workers=1, cores=2, stats="unix", metrics=False).start()
    try:
        first = s.stats()
        os.kill(s.pid, signal.SIGHUP)
        seen = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            doc = read_stats(s.stats_addr)  # never refused while the generation changes
            seen.add(doc["workers"][0]["pid"])
            if doc["workers"][0]["pid"] != first["workers"][0]["pid"] and \
                    doc["workers"][0]["accepting"]:
                break
            time.sleep(0.05)
        assert seen - {first["workers"][0]["pid"]}, "the reload never showed a new worker"
    finally:
        s.stop()
    assert not os.path.exists(s.stats_addr[5:]), "stats socket file left behind"
