"""`cores` bounds the in-flight requests of a worker: suspended requests overlap up to it."""
import concurrent.futures
import time

import pytest

from conftest import APPS, wait_for

UVLOOP = True  # suspension and resumption of cores are loop callbacks: test both loops


@pytest.fixture(scope="module")
def ten_cores(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def two_cores(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=2, stats_socket=True)


def run_concurrently(server, n, path):
    def one(_):
        start = time.monotonic()
        status, _, body = server.request("GET", path, timeout=20)
        return status, body, time.monotonic() - start

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    return results, time.monotonic() - start


def test_ten_suspended_requests_overlap_on_ten_cores(ten_cores):
    results, total = run_concurrently(ten_cores, 10, "/sleep?t=1")
    assert [r[:2] for r in results] == [(200, b"slept")] * 10
    # One after another: 10 s; together about 1 s (5 s: a loaded machine).
    assert total < 5.0, "10 x 1 s on 10 cores took %.2f s" % total
    assert min(r[2] for r in results) >= 0.9


def test_third_request_waits_for_a_free_core(two_cores):
    # Seen from the stats socket while they run: both cores in a request at once, never
    # three (a wall-clock bound alone cannot tell "at once" from "one after another" on a
    # loaded machine).
    seen = []

    def watch():
        n = two_cores.cores_in_request()
        seen.append(n)
        return n >= 2

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_concurrently, two_cores, 3, "/sleep?t=1")
        both = wait_for(lambda: watch() or run.done(), timeout=20, interval=0.02)
        results, total = run.result()
    assert both and max(seen) == 2, "the first two requests should run at once: %r" % seen
    assert [r[:2] for r in results] == [(200, b"slept")] * 3
    durations = sorted(r[2] for r in results)
    assert durations[2] >= 1.8, "the third request must wait for a core: %r" % durations
    assert total < 10.0
