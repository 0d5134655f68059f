"""Each core is its own thread as Python libraries see it (issue 17), without a database:
thread identity and threading.local per core (and the real thread's outside cores), a clean
contextvars context per request, asyncio.run() and async_to_sync() that suspend only their
core, locks held across a suspension, and threads started at import under preload.

Concurrent requests meet inside the worker (tests/apps/core_sync.py) before they look, so
each sits on a core of its own while the others look too; nothing depends on timing."""
import concurrent.futures
import time

import pytest

from conftest import APPS, Server
from threads_helpers import concurrently, get_json, group_name, release, start_request, wait_phase

UVLOOP = True  # cores switch on the loop; asyncio.run() and async_to_sync() run on it

APP = APPS / "threads_app.py"
CORES = 10


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(APP, workers=1, cores=CORES)


@pytest.fixture(scope="module")
def one_core(server_factory):
    return server_factory(APP, workers=1, cores=1)


@pytest.fixture(scope="module", params=["lock", "rlock", "lock_attr", "rlock_attr"])
def locks(request, server_factory):
    """(kind, server): a server per kind of lock, because without core-aware locks a request
    that wants a Lock another core holds blocks the worker for good; it must not take the other
    tests' server with it."""
    return request.param, server_factory(APP, workers=1, cores=CORES)


# ---- thread identity and threading.local ----

def test_each_core_has_its_own_thread_identity_and_locals(server):
    group = group_name("local")
    results = concurrently(server, ["/local?id=r%d&group=%s&n=%d" % (i, group, CORES)
                                    for i in range(CORES)])
    assert len({r["core"] for r in results}) == CORES, "the requests did not meet on 10 cores"
    for i, r in enumerate(results):
        before, after = r["before"], r["after"]
        assert after["local"] == "r%d" % i, \
            "threading.local value changed under a suspended request: %r" % r
        assert before == after, "identity changed across a suspension: %r" % r
        assert after["ident"] == after["_thread"] == after["current"], after
        assert not after["is_main"], "current_thread() in a core is the main thread"
    idents = [r["after"]["ident"] for r in results]
    assert len(set(idents)) == CORES, "cores share a thread ident: %r" % idents
    names = [r["after"]["current_name"] for r in results]
    assert len(set(names)) == CORES, "cores share current_thread(): %r" % names


def test_loop_callbacks_and_real_threads_keep_the_real_identity(server):
    r = get_json(server, "/outside")
    core, callback, thread = r["core"], r["callback"], r["thread"]
    assert core["local"] == "core"
    # A loop callback runs on the worker's main thread, as itself.
    assert callback["ident"] == callback["_thread"] == callback["main_ident"], callback
    assert callback["is_main"] and callback["local"] is None, callback
    assert core["ident"] != callback["ident"], "the core's ident leaked into a loop callback"
    # A real thread (the loop's executor) is itself too.
    assert thread["ident"] == thread["_thread"] == thread["thread_ident"], thread
    assert thread["local"] is None and not thread["is_main"], thread
    assert thread["ident"] not in (core["ident"], callback["ident"])


# ---- contextvars ----

def test_context_variable_does_not_reach_the_next_request_on_the_core(one_core):
    first = get_json(one_core, "/ctx/set?v=first")
    assert first["now"] == "first" and first["core"] == 0
    later = get_json(one_core, "/ctx/get")
    assert later["core"] == 0  # cores = 1: the same core, so the same greenlet
    assert later["value"] == "unset", "a ContextVar set by one request leaked into the next"
    again = get_json(one_core, "/ctx/set?v=second")
    assert again["previous"] == "unset", again


def test_requests_start_from_the_workers_base_context(one_core):
    # A copy of the base context: what the app set at import is there in every request.
    assert get_json(one_core, "/ctx/get")["import"] == "set at import"


# ---- the seed's asyncio model still works in a core ----

def test_running_loop_tasks_and_futures_in_a_core(server):
    assert get_json(server, "/asyncio") == {
        "running_is_worker_loop": True, "get_event_loop_is_worker_loop": True,
        "create_task": "task", "ensure_future": "ensured", "Task": "Task", "Future": "future"}


# ---- sync code calling async code ----

@pytest.mark.parametrize("via", ["asyncio", "asgiref"])
def test_sync_to_async_bridge_suspends_only_its_core(server, via):
    key = group_name(via)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = start_request(pool, server, "/run?via=%s&key=%s" % (via, key))
        try:
            wait_phase(server, key, "waiting", pending)
            # The coroutine waits on the worker's loop: the worker keeps serving meanwhile.
            start = time.monotonic()
            assert server.request("GET", "/", timeout=10)[0] == 200
            assert time.monotonic() - start < 5.0
            assert not pending.done(), "the bridged call returned before its coroutine ended"
        finally:
            release(server, key)
        r = pending.result(timeout=30)
    assert r.get("result") == "result %s released=True" % key, r
    assert r["loop_still_worker_loop"], r


@pytest.mark.parametrize("via", ["asyncio", "asgiref"])
def test_sync_to_async_bridge_raises_the_coroutines_exception(server, via):
    r = get_json(server, "/run?via=%s&key=fail-%s" % (via, via))
    assert r.get("raised") == "ValueError: work failed: fail-%s" % via, r
    server.assert_healthy()


# ---- locks held across a suspension ----

def test_lock_held_across_a_suspension_serializes_instead_of_deadlocking(locks):
    kind, server = locks
    group = group_name(kind)
    try:
        a, b = concurrently(server, ["/lock?kind=%s&group=%s&n=2&hold=0.3" % (kind, group)] * 2,
                            timeout=20)
    except (OSError, TimeoutError) as e:
        raise AssertionError("requests sharing a %s never finished (the worker deadlocked): %r"
                             % (kind, e)) from e
    first, second = sorted((a, b), key=lambda r: r["acquired"])
    assert first["core"] != second["core"]
    assert second["acquired"] >= first["released"], \
        "both requests held the %s at once: %r %r" % (kind, first, second)
    assert second["acquired"] - second["wanted"] >= 0.2, "the second never waited: %r" % second


# ---- threads started at import under preload ----

def test_preload_warns_about_threads_started_at_import(tmp_path):
    server = Server(tmp_path, APPS / "import_thread_app.py", workers=1, cores=2,
                    server={"preload": True})
    try:
        server.start()
        log = server.wait_log("aiowsgi-test-import-thread")
        lines = [line for line in log.splitlines() if "aiowsgi-test-import-thread" in line]
        assert lines, "no warning names the thread started at import:\n" + log
        assert any("preload" in line.lower() for line in lines), lines
        # It is indeed gone in the worker, as the warning says.
        assert get_json(server, "/alive") == {"alive": False}
    finally:
        server.stop()
