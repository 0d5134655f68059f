"""`cores` bounds the in-flight requests of a worker: suspended requests overlap up to it."""
import concurrent.futures
import time

import pytest

from conftest import APPS


@pytest.fixture(scope="module")
def ten_cores(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def two_cores(server_factory):
    return server_factory(APPS / "http_app.py", workers=1, cores=2)


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
    assert total < 5.0, "10 x 1 s on 10 cores took %.2f s" % total
    assert min(r[2] for r in results) >= 0.9


def test_third_request_waits_for_a_free_core(two_cores):
    results, total = run_concurrently(two_cores, 3, "/sleep?t=1")
    assert [r[:2] for r in results] == [(200, b"slept")] * 3
    durations = sorted(r[2] for r in results)
    assert durations[1] < 1.8, "the first two requests should run at once: %r" % durations
    assert durations[2] >= 1.8, "the third request must wait for a core: %r" % durations
    assert total < 5.0
