"""aiowsgi.await_ and the rest of the aiowsgi module, from inside WSGI requests."""
import concurrent.futures
import json
import time

import pytest

from conftest import APPS, EXAMPLES, LOOP

UVLOOP = True  # await_ and the core's suspension run on the loop: test both loops


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APPS / "await_app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def one_core(server_factory):
    return server_factory(APPS / "await_app.py", workers=1, cores=1, stats_socket=True)


def get(server, path, timeout=10):
    status, _, body = server.request("GET", path, timeout=timeout)
    assert status == 200, (path, status, body)
    return body.decode()


def test_result(server):
    value, elapsed = get(server, "/result?t=0.2").rsplit(" ", 1)
    assert value.startswith("core ")
    assert float(elapsed) >= 0.19


def test_exception_keeps_the_coroutine_traceback(server):
    text = get(server, "/exception")
    assert text.startswith("ValueError: failed inside the coroutine")
    assert "in deep_failure" in text  # the frame that raised, inside the coroutine
    assert "in application" in text


def test_timeout_cancels_the_awaitable(server):
    text = get(server, "/timeout")
    assert text.startswith("timeout "), text
    elapsed = float(text.split()[1])
    assert 0.28 <= elapsed < 2.0
    assert text.endswith("cancelled=True")


@pytest.mark.parametrize("path,expected", [("/task", "from a task"),
                                           ("/future", "from a future")])
def test_tasks_and_futures(server, path, expected):
    assert get(server, path) == expected


def test_sleep(server):
    assert float(get(server, "/sleep").split()[1]) >= 0.19


def test_ten_cores_await_at_once_and_finish_together(server):
    def one(_):
        start = time.monotonic()
        body = get(server, "/result?t=1", timeout=20)
        return body, time.monotonic() - start

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    total = time.monotonic() - start
    assert all(r[0].startswith("core ") for r in results)
    assert len({r[0].split()[1] for r in results}) == 10, "each request had its own core"
    durations = [r[1] for r in results]
    assert min(durations) >= 0.95
    # One after another they would take 10 s; together about 1 s (5 s: a loaded machine).
    assert total < 5.0, "10 concurrent 1 s awaits took %.2f s" % total


def test_runtime_error_outside_a_core(server):
    assert "must be called from inside a request" in get(server, "/import_error")
    assert "must be called from inside a request" in get(server, "/callback_error")


def test_ids_and_loop(server):
    ids = json.loads(get(server, "/ids"))
    assert ids["worker"] == 1
    assert 0 <= ids["core"] < 10
    assert ids["loop"].startswith("uvloop" if LOOP == "uvloop" else "asyncio")


def test_spawned_task_exception_is_logged(server):
    assert get(server, "/spawn") == "spawned"
    text = server.wait_log("spawned task failed")
    assert "exception in task spawned with aiowsgi.spawn()" in text
    assert "KeyError: 'spawned task failed'" in text


def wait_state(server, key, value, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        state = json.loads(get(server, "/state"))
        if state[key] >= value or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_client_disconnect_cancels_and_frees_the_core(one_core):
    before = json.loads(get(one_core, "/state"))
    conn = one_core.connect()
    conn.send(b"GET /hang?t=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert one_core.wait_in_request(1) == 1  # the request is suspended in await_
    conn.close()
    state = wait_state(one_core, "cancelled", before["cancelled"] + 1)
    assert state["cancelled"] == before["cancelled"] + 1
    assert state["finished"] == before["finished"]
    # The only core is free again: a new request is served at once.
    start = time.monotonic()
    assert get(one_core, "/") == "ok"
    assert time.monotonic() - start < 5.0  # not the 30 s of /hang


def test_disconnect_can_let_the_work_finish(one_core):
    before = json.loads(get(one_core, "/state"))
    conn = one_core.connect()
    conn.send(b"GET /hang_keep?t=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert one_core.wait_in_request(1) == 1
    conn.close()
    state = wait_state(one_core, "finished", before["finished"] + 1)
    assert state["finished"] == before["finished"] + 1
    assert state["cancelled"] == before["cancelled"]


@pytest.fixture(scope="module")
def flask_example(server_factory):
    return server_factory(EXAMPLES / "await_flask.py", workers=1, cores=10)


def test_flask_example_awaits_aiohttp_and_a_database_coroutine(flask_example):
    status, _, body = flask_example.request("GET", "/users/2")
    assert status == 200 and json.loads(body) == {"id": 2, "name": "grace"}
    assert flask_example.request("GET", "/users/9")[0] == 404
    status, _, body = flask_example.request("GET", "/dashboard/2")
    assert status == 200, body
    data = json.loads(body)
    assert data["user"] == {"id": 2, "name": "grace"}
    assert data["friend"] == {"id": 3, "name": "linus"}
    assert flask_example.request("GET", "/dashboard/9")[0] == 404
