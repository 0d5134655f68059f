"""The `uwsgi` compatibility module: uWSGI's async API working under this engine."""
import concurrent.futures
import json
import time

import pytest

from conftest import APPS

UVLOOP = True  # async_sleep, suspend and wait_fd_* are loop callbacks: both loops


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APPS / "uwsgi_app.py", workers=2, cores=10,
                          limits={"harakiri": 30, "max_requests": 1000})


@pytest.fixture(scope="module")
def no_compat(server_factory):
    return server_factory(APPS / "uwsgi_app.py", workers=1, cores=2,
                          app_options={"uwsgi_compat": False})


def get_json(server, path, timeout=10):
    status, _, body = server.request("GET", path, timeout=timeout)
    assert status == 200, (path, status, body)
    return json.loads(body)


def test_wait_fd_read_on_a_socketpair(server):
    r = get_json(server, "/fd_read")
    assert r["ready_is_fd"] and r["got"] == "x"
    assert 0.15 <= r["elapsed"] < 2.0


def test_wait_fd_read_timeout_gives_ready_fd_minus_one(server):
    r = get_json(server, "/fd_timeout")
    assert r["ready"] == -1 and r["got"] == ""
    assert 0.28 <= r["elapsed"] < 2.0


def test_wait_fd_write(server):
    assert get_json(server, "/fd_write")["ready_is_fd"]


def test_async_sleep(server):
    r = get_json(server, "/async_sleep")
    assert 0.48 <= r["elapsed"] < 2.0
    assert r["ready"] == -1


def test_suspend_resumed_by_a_callback(server):
    assert 0.28 <= get_json(server, "/callback")["elapsed"] < 2.0


def test_suspended_cores_overlap(server):
    # Ten async_sleep(0.5) requests on one worker's cores finish together: only the core
    # suspends, never the loop.
    def one(_):
        return get_json(server, "/async_sleep", timeout=20)["elapsed"]

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    assert min(results) >= 0.48
    # Together about 0.5 s; one after another 5 s.
    assert time.monotonic() - start < 4.0


def test_outside_a_request_is_a_runtime_error(server):
    status, _, body = server.request("GET", "/outside")
    assert status == 200
    assert b"must be called from inside a request" in body


def test_worker_id_numproc_opt(server):
    info = get_json(server, "/info")
    assert info["worker_id"] in (1, 2)
    assert info["numproc"] == 2
    assert info["fd"] is True
    opt = info["opt"]
    assert opt["http-socket"] == "127.0.0.1:%d" % server.port
    assert opt["processes"] == "2"
    assert opt["asyncio"] == "10"
    assert opt["harakiri"] == "30"
    assert opt["max-requests"] == "1000"
    assert opt["wsgi-file"].endswith("uwsgi_app.py")
    assert opt["master"] is True and opt["greenlet"] is True


def test_websocket_calls_without_a_handshake_raise_oserror(server):
    status, _, body = server.request("GET", "/ws/norecv")
    assert status == 200
    assert body.startswith(b"OSError: uwsgi.websocket_recv_nb(): no websocket handshake")
    status, _, body = server.request("GET", "/ws/nokey")
    assert body == b"OSError: websocket handshake: the request has no Sec-WebSocket-Key"


def test_uwsgi_compat_false_removes_the_module(no_compat):
    status, _, body = no_compat.request("GET", "/import")
    assert status == 200
    assert body.startswith(b"ImportError: No module named 'uwsgi'")
