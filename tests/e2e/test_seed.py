"""The six asyncio-engine examples of the seed doc (examples/seed/), served by
examples/seed_app.py: the acceptance tests of the engine."""
import http.server
import subprocess
import threading
import time

import pytest

from conftest import BACKEND, EXAMPLES, find_master

UVLOOP = True  # the examples schedule callbacks, tasks and futures on the loop: both loops

# The examples wait 2 s; upper bounds leave 3x that for a loaded machine (a request that
# waited for a timer it should not have, or ran after another, is still caught).

UPSTREAM_BODY = b"<html>local upstream page for the aiohttp example</html>"


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(UPSTREAM_BODY)))
        self.end_headers()
        self.wfile.write(UPSTREAM_BODY)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/upstream" % httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture(scope="module")
def seed(server_factory, upstream):
    return server_factory(EXAMPLES / "seed_app.py", workers=2, cores=10,
                          env={"SEED_AIOHTTP_URL": upstream})


def timed_get(server, path):
    start = time.monotonic()
    status, headers, body = server.request("GET", path, timeout=15)
    return status, headers, body, time.monotonic() - start


def test_index_lists_every_example(seed):
    status, headers, body = seed.request("GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    for path in ("/callback", "/suspend", "/generator", "/task", "/future", "/aiohttp"):
        assert ('href="%s"' % path).encode() in body


def test_callback_responds_at_once_and_runs_later(seed):
    before = seed.output_lines("Hello 2 seconds elapsed")
    status, _, body, elapsed = timed_get(seed, "/callback")
    assert status == 200 and body == b"Hello World"
    assert elapsed < 1.5, "the callback example must not wait for its timer (took %.2f s)" % elapsed
    sent = time.monotonic()
    got = seed.wait_output_line("Hello 2 seconds elapsed", count=before + 1, timeout=15)
    assert got == before + 1, "the call_later callback's print() never reached the log"
    assert 1.5 <= time.monotonic() - sent + elapsed <= 6.0
    assert "Traceback" not in seed.log_text()


def test_suspend_waits_two_seconds(seed):
    before = seed.output_lines("Hello 2 seconds elapsed")
    status, _, body, elapsed = timed_get(seed, "/suspend")
    assert status == 200 and body == b"Hello World"
    assert 1.8 <= elapsed < 6.0, elapsed
    assert seed.wait_output_line("Hello 2 seconds elapsed", count=before + 1) == before + 1


def test_generator_sends_two_chunks_two_seconds_apart(seed):
    with seed.connect(timeout=15) as conn:
        start = time.monotonic()
        conn.send(b"GET /generator HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        arrivals = {}  # marker -> seconds after the request was sent
        data = b""
        while b"Two" not in data:
            assert conn._fill(), "connection closed before 'Two': got %r" % data
            data = conn.buf
            for marker in (b"One", b"Two"):
                if marker in data and marker not in arrivals:
                    arrivals[marker] = time.monotonic() - start
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert 1.8 <= arrivals[b"One"] < 6.0, arrivals
    assert arrivals[b"Two"] - arrivals[b"One"] >= 1.8, \
        "'One' and 'Two' must be separate chunks 2 s apart: %r" % arrivals


def test_task_wakes_the_request(seed):
    status, _, body, elapsed = timed_get(seed, "/task")
    assert status == 200 and body == b"Hello World"
    assert 1.8 <= elapsed < 6.0, elapsed


def test_future_carries_the_result(seed):
    status, _, body, elapsed = timed_get(seed, "/future")
    assert status == 200 and body == b"Hello World"
    assert 1.8 <= elapsed < 6.0, elapsed


def test_aiohttp_fetches_the_upstream_page(seed):
    status, _, body, elapsed = timed_get(seed, "/aiohttp")
    assert status == 200
    assert body == UPSTREAM_BODY
    assert 1.8 <= elapsed < 7.0, elapsed


def test_examples_run_concurrently(seed):
    # Five 2-second examples at once on 2 workers x 10 cores: about 2 s, not 10.
    import concurrent.futures
    paths = ["/suspend", "/task", "/future", "/generator", "/suspend"]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(lambda p: seed.request("GET", p, timeout=15), paths))
    elapsed = time.monotonic() - start
    assert [r[0] for r in results] == [200] * len(paths)
    assert results[3][2] == b"OneTwo"
    assert elapsed < 8.0, "examples ran one after another (%.1f s)" % elapsed  # else 10 s


def test_example_server_toml_is_valid():
    if BACKEND.startswith("uwsgi"):
        raise AssertionError("aiowsgi-master --check has no uWSGI equivalent")
    result = subprocess.run([find_master(), "--check", "-c", str(EXAMPLES / "server.toml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
