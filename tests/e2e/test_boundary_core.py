"""The app boundary, core side (SPEC.md "Python side"): what one request leaves behind — a
pending wake-up of its greenlet, its write(), its wsgi.input, the list it returned — never
reaches another client and never crashes or stalls the worker; GreenletExit raised by the
app is an app exception like any other.

Every case checks the status on the wire, that no other client's bytes arrive, and that the
same worker pid answers right after (a crash hidden by a respawn is a failure).
"""
import http.client
import socket
import threading
import time
import uuid

import pytest

from conftest import APPS

UVLOOP = True  # wake-ups, write callbacks and wsgi.input run on the loop: both loops

APP = APPS / "boundary_core_app.py"


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(APP, workers=1, cores=4)


@pytest.fixture(scope="module")
def one_core(server_factory):
    return server_factory(APP, workers=1, cores=1)


@pytest.fixture(scope="module")
def harakiri(server_factory):
    return server_factory(APP, workers=1, cores=1, limits={"harakiri": 1})


def token():
    return uuid.uuid4().hex[:12]


def get(server, path, timeout=10, **kw):
    status, _, body = server.request("GET", path, timeout=timeout, **kw)
    return status, body.decode("latin-1")


def pid_of(server):
    status, body = get(server, "/pid")
    assert status == 200, (status, body)
    return int(body)


def wait_result(server, t, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(server, "/result?t=" + t)
        assert status == 200
        if body != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def in_threads(fn, args_list):
    """Runs fn(*args) for each args at once; returns the results (or exceptions) in order."""
    results = [None] * len(args_list)

    def run(i, args):
        try:
            results[i] = fn(*args)
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertion
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return results


def echo(server, t, d):
    return get(server, "/echo?t=%s&d=%s" % (t, d))


def assert_own_echo(result, t, pid):
    assert not isinstance(result, Exception), (t, result)
    status, body = result
    assert status == 200, (t, status, body)
    assert body == "%s own %d" % (t, pid), (t, body)


# ---- a wake-up left pending by a request that returned -----------------------------------

def test_stale_wakeup_never_reaches_concurrent_clients(srv):
    """A request returns with call_later(t, me.switch) pending; the wake-up arrives while
    other clients are being served: each client gets its own body, nothing else."""
    pid = pid_of(srv)
    for _round in range(3):
        leaver = token()
        assert get(srv, "/leave?t=%s&d=0.3" % leaver) == (200, leaver)
        # Clients in flight across the wake-up, more of them than cores.
        tokens = [token() for _ in range(12)]
        results = in_threads(lambda t: echo(srv, t, 0.2), [(t,) for t in tokens])
        results += in_threads(lambda t: echo(srv, t, 0.2), [(t,) for t in tokens[:6]])
        for t, r in zip(tokens + tokens[:6], results):
            assert_own_echo(r, t, pid)
    assert "stale wake-up" in srv.wait_log("stale wake-up")
    assert pid_of(srv) == pid


def test_stale_wakeup_on_one_core_does_not_resume_the_next_request(one_core):
    """cores = 1: request A leaves a 0.6 s wake-up; B, next on the same core, waits 1.2 s
    for its own timer and must not be woken by A's."""
    pid = pid_of(one_core)
    a = token()
    assert get(one_core, "/leave?t=%s&d=0.6" % a) == (200, a)
    b = token()
    start = time.monotonic()
    assert_own_echo(echo(one_core, b, 1.2), b, pid)
    assert time.monotonic() - start >= 1.1
    log = one_core.wait_log("GET /leave?t=%s" % a)
    assert "stale wake-up" in log and "GET /leave?t=%s" % a in log
    assert pid_of(one_core) == pid


def test_idle_core_switched_into_logs_and_keeps_waiting(one_core):
    """A wake-up that arrives while the core is idle: one warning naming the request that
    left it; the core neither serves twice nor gets lost."""
    pid = pid_of(one_core)
    a = token()
    assert get(one_core, "/leave?t=%s&d=0.2" % a) == (200, a)
    log = one_core.wait_log("GET /leave?t=%s" % a, timeout=5)
    assert "stale wake-up" in log and "GET /leave?t=%s" % a in log
    assert log.count("GET /leave?t=%s" % a) == 1
    # The core is listed once: two clients at once on one core are served one after the
    # other, each with its own body.
    tokens = [token() for _ in range(4)]
    for t, r in zip(tokens, in_threads(lambda t: echo(one_core, t, 0.1), [(t,) for t in tokens])):
        assert_own_echo(r, t, pid)
    assert pid_of(one_core) == pid


def test_harakiri_cancelled_request_wakeup_does_not_resume_the_next(harakiri):
    """A request waits for a 2.5 s wake-up; harakiri (1 s) cancels it first. Requests served
    on the same core afterwards are never resumed by that wake-up."""
    pid = pid_of(harakiri)
    a = token()
    start = time.monotonic()
    status, _ = get(harakiri, "/leave-and-wait?t=%s&d=2.5" % a)
    assert status == 504
    # Back-to-back short requests on the one core until well past A's wake-up.
    n = 0
    while time.monotonic() - start < 3.5:
        b = token()
        assert_own_echo(echo(harakiri, b, 0.3), b, pid)
        n += 1
    assert n >= 3
    log = harakiri.wait_log("stale wake-up")
    assert "stale wake-up" in log and "GET /leave-and-wait?t=%s" % a in log
    assert pid_of(harakiri) == pid


# ---- write() after its request, or from outside its core ----------------------------------

def test_saved_write_called_after_the_end_raises(srv):
    """Generator response; a loop callback calls the request's write() after the request
    ended: RuntimeError in the callback, the worker lives."""
    pid = pid_of(srv)
    t = token()
    status, body = get(srv, "/saved-write-gen?t=%s&d=0.3" % t)
    assert (status, body) == (200, t + " body")
    # Other clients served meanwhile get only their own bytes.
    others = [token() for _ in range(4)]
    for o, r in zip(others, in_threads(lambda o: echo(srv, o, 0.4), [(o,) for o in others])):
        assert_own_echo(r, o, pid)
    assert wait_result(srv, t).startswith("RuntimeError")
    assert pid_of(srv) == pid


def test_write_from_a_loop_callback_during_the_request_raises(srv):
    pid = pid_of(srv)
    t = token()
    status, body = get(srv, "/write-callback?t=%s&n=100" % t)
    assert (status, body) == (200, t)
    assert wait_result(srv, t).startswith("RuntimeError")
    assert pid_of(srv) == pid


def test_write_from_a_loop_callback_with_a_full_socket_raises(srv):
    """16 MiB from a loop callback would meet a full socket and wait: from the loop's own
    greenlet that wait can only spin. It raises instead, at once."""
    pid = pid_of(srv)
    t = token()
    status, body = get(srv, "/write-callback?t=%s&n=%d" % (t, 16 << 20), timeout=15)
    assert (status, body) == (200, t)
    assert wait_result(srv, t).startswith("RuntimeError")
    assert pid_of(srv) == pid


def test_write_kept_from_an_earlier_request_raises(one_core):
    pid = pid_of(one_core)
    a, b = token(), token()
    assert get(one_core, "/save-write?t=" + a) == (200, a)
    status, body = get(one_core, "/use-saved-write?t=" + b)
    assert status == 200
    assert body.startswith(b + " RuntimeError"), body
    assert "STALE" not in body
    assert pid_of(one_core) == pid


# ---- wsgi.input after its request, or from outside its core -------------------------------

def test_input_kept_from_an_earlier_request_raises(one_core):
    pid = pid_of(one_core)
    a, b = token(), token()
    status, _, body = one_core.request("POST", "/save-input?t=" + a, body=b"first body")
    assert (status, body.decode()) == (200, a)
    status, _, body = one_core.request("POST", "/use-saved-input?t=" + b, body=b"second body")
    assert status == 200
    assert body.decode().startswith(b + " RuntimeError"), body
    assert pid_of(one_core) == pid


def test_input_from_a_loop_callback_raises(srv):
    pid = pid_of(srv)
    t = token()
    payload = b"p" * 5000
    status, _, body = srv.request("POST", "/input-callback?t=" + t, body=payload)
    assert status == 200
    text = body.decode()
    assert text.startswith(t + " RuntimeError"), text
    assert text.endswith(" %d" % len(payload)), text  # the request itself still reads it all
    assert pid_of(srv) == pid


def test_module_functions_refuse_a_loop_callback(srv):
    """uwsgi.* and aiowsgi.await_/sleep from a loop callback while the request is live."""
    pid = pid_of(srv)
    t = token()
    status, body = get(srv, "/module-callback?t=" + t)
    assert status == 200
    words = body.split()
    assert words[0] == t
    assert len(words) > 2
    for word in words[1:]:
        assert word.endswith("=RuntimeError"), body
    assert pid_of(srv) == pid


# ---- GreenletExit raised by the app --------------------------------------------------------

def test_greenlet_exit_from_the_app_is_a_500_and_the_core_survives(one_core):
    pid = pid_of(one_core)
    for _ in range(3):  # more than the cores: a lost core would leave nobody to answer
        t = token()
        with one_core.connect(timeout=5) as conn:
            resp = conn.request("GET", "/greenlet-exit?t=" + t)
            assert resp.status == 500, resp
            assert t.encode() not in resp.body
        log = one_core.wait_log("raised by the app " + t)
        assert "GreenletExit: raised by the app " + t in log
    assert pid_of(one_core) == pid


def test_greenlet_exit_after_headers_closes_the_connection(one_core):
    pid = pid_of(one_core)
    t = token()
    with one_core.connect(timeout=5) as conn:
        conn.send(("GET /greenlet-exit-mid?t=%s HTTP/1.1\r\nHost: x\r\n\r\n" % t).encode())
        _, status, _, _ = conn.read_head()
        assert status == 200
        rest = conn.read_to_close()
        assert t.encode() in rest and not rest.endswith(b"0\r\n\r\n"), rest
    assert "raised mid-stream " + t in one_core.wait_log("raised mid-stream " + t)
    assert pid_of(one_core) == pid


# ---- a list response the app empties while the server sends it ---------------------------

def slow_download(srv, path, t, done):
    """Requests |path| with a small receive buffer and reads nothing until the app's callback
    recorded a result for which done(result) holds (the server is then suspended in the middle
    of the send); then reads everything. Returns (head, body)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", srv.port))
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      % path).encode())
        deadline = time.monotonic() + 10
        while not done(get(srv, "/result?t=" + t)[1]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done(get(srv, "/result?t=" + t)[1])
        data = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_big_list_mutated_during_a_slow_send_keeps_its_bytes(srv):
    pid = pid_of(srv)
    t = token()
    items, size = 64, 256 * 1024
    expected = b"".join((b"%s:%d:" % (t.encode(), i)).ljust(size, bytes([65 + i % 26]))
                        for i in range(items))
    # The app drops its items (and reuses the memory) while the server is mid-send.
    head, body = slow_download(srv, "/biglist?t=%s&items=%d&size=%d&d=0.2" % (t, items, size),
                               t, lambda r: r == "mutated")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    assert b"content-length: %d" % len(expected) in head.lower()
    assert len(body) == len(expected)
    assert body == expected, "bytes changed in flight"
    assert pid_of(srv) == pid


def test_file_closed_by_the_app_during_a_slow_sendfile_keeps_its_bytes(srv):
    """The server sends from its own descriptor: the app closing its file object (and the
    number being reused for another file) mid-send changes nothing on the wire."""
    pid = pid_of(srv)
    t = token()
    size = 8 * 1024 * 1024
    expected = t.encode().ljust(size, b"F")
    head, body = slow_download(srv, "/filewrapper-close?t=%s&size=%d&d=0.2" % (t, size), t,
                               lambda r: r.startswith("closed"))
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    assert len(body) == len(expected)
    assert body == expected, "bytes changed in flight"
    assert pid_of(srv) == pid
