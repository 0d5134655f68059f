"""WebSockets when their worker leaves (HUP, TERM, max_requests): each client gets a close frame
at once, 1012 Service Restart while the service goes on and 1001 Going Away when the server
stops, the app's receive raises OSError, and the worker exits without waiting for
graceful_timeout. Plain requests keep their graceful_timeout."""
import asyncio
import os
import signal
import threading
import time

from pathlib import Path

import websockets

from conftest import APPS, Server, find_master, wait_for

UVLOOP = True  # the app's own reader (/ws/reader) is a loop watcher: both loops

APP = APPS / "ws_reload_app.py"
GRACE = 20  # graceful_timeout: far above what any of these exits may take
# What "at once" may take on a loaded 2-core machine: well under GRACE and under the 6 s
# request of the last tests, so each bound still tells a prompt close from a timeout.
PROMPT = 4.0
DRAIN_LOG = "; draining"  # the master's "worker 1 (pid N, generation 1) replaced by ...; draining"


def alive(pid):
    """The process exists and is not a zombie waiting for the master to reap it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_pid(server):
    status, _, body = server.request("GET", "/pid")
    assert status == 200
    return int(body)


def ws_url(server, path):
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 40))


async def open_echo(server, path):
    ws = await websockets.connect(ws_url(server, path))
    await ws.send("hello " + path)
    assert await asyncio.wait_for(ws.recv(), 5) == "hello " + path
    return ws


async def closed_at(ws):
    """Waits for the server's close frame; the monotonic time it came. (recv() would raise
    only once the TCP connection is closed too, which a worker does once the app's request
    ended; the library reads frames by itself and notes a close frame in close_rcvd.)"""
    while ws.close_rcvd is None and not ws.closed:
        await asyncio.sleep(0.005)
    return time.monotonic()


async def close_after_signal(server, sockets, signo, log_needle=None):
    """Sends signo to the master; returns (signal time, time log_needle appeared or None,
    {path: (close code, close time)})."""
    waits = {path: asyncio.ensure_future(closed_at(ws)) for path, ws in sockets.items()}
    t_signal = time.monotonic()
    os.kill(server.pid, signo)
    t_log = None
    while not all(w.done() for w in waits.values()) or (log_needle and t_log is None):
        if log_needle and t_log is None and log_needle in server.log_text():
            t_log = time.monotonic()
        if time.monotonic() - t_signal > 20:
            break
        await asyncio.sleep(0.02)
    closes = {}
    for path, w in waits.items():
        t_close = await asyncio.wait_for(w, 5)
        frame = sockets[path].close_rcvd  # None: the connection ended without a close frame
        closes[path] = (frame.code if frame else None, t_close)
        await sockets[path].close()
    return t_signal, t_log, closes


def test_hup_closes_websockets_with_1012_and_the_old_worker_exits_at_once(server_factory):
    server = server_factory(APP, workers=1, cores=10, server={"graceful_timeout": GRACE})
    old = worker_pid(server)

    async def scenario():
        sockets = {}
        for path in ("/ws/blocking", "/ws/reader", "/ws/deaf"):
            sockets[path] = await open_echo(server, path)
        t_hup, t_drain, closes = await close_after_signal(server, sockets, signal.SIGHUP,
                                                          DRAIN_LOG)
        assert t_drain is not None, "the old worker was never drained"
        for path, (code, t_close) in closes.items():
            assert code == 1012, (path, code)
            # The new worker boots between the HUP and the drain; the close follows the drain.
            assert t_close - t_drain < PROMPT, (path, t_close - t_drain)
        print("HUP -> drain %.2f s; drain -> close frames %s" % (
            t_drain - t_hup, {p: round(t - t_drain, 3) for p, (_, t) in closes.items()}))
        return t_hup

    t_hup = run(scenario())
    assert wait_for(lambda: not alive(old), GRACE / 2, 0.02) is True, \
        "the old worker must not wait for graceful_timeout"
    print("HUP -> old worker exit %.2f s" % (time.monotonic() - t_hup))
    log = server.log_text()
    assert ("blocking ended: uwsgi.websocket_recv(): the websocket is closed: the server is "
            "restarting (1012) | send after: uwsgi.websocket_send(): the websocket is closed: "
            "the server is restarting (1012)") in log
    assert "reader ended: uwsgi.websocket_recv_nb(): the websocket is closed: the server is " \
           "restarting (1012)" in log

    # The client reconnects, to the new generation.
    async def again():
        ws = await open_echo(server, "/ws/blocking")
        await ws.close()
        assert ws.close_code == 1000

    run(again())
    assert worker_pid(server) != old
    server.assert_healthy()


def test_term_closes_websockets_with_1001_and_the_master_exits_at_once(server_factory):
    server = server_factory(APP, workers=1, cores=10, server={"graceful_timeout": GRACE})

    async def scenario():
        sockets = {}
        for path in ("/ws/blocking", "/ws/reader"):
            sockets[path] = await open_echo(server, path)
        return await close_after_signal(server, sockets, signal.SIGTERM)

    t_term, _, closes = run(scenario())
    for path, (code, t_close) in closes.items():
        assert code == 1001, (path, code)
        assert t_close - t_term < PROMPT, (path, t_close - t_term)
    server.proc.wait(GRACE / 2)  # not graceful_timeout
    print("TERM -> close frames %s; master exit %.2f s" % (
        {p: round(t - t_term, 3) for p, (_, t) in closes.items()}, time.monotonic() - t_term))
    assert server.proc.returncode == 0
    assert "blocking ended: uwsgi.websocket_recv(): the websocket is closed: the server is " \
           "going away (1001)" in server.log_text()


def test_quit_still_sends_websockets_1001_before_it_cuts_them(server_factory):
    server = server_factory(APP, workers=1, cores=10, server={"graceful_timeout": GRACE})

    async def scenario():
        sockets = {"/ws/blocking": await open_echo(server, "/ws/blocking")}
        return await close_after_signal(server, sockets, signal.SIGQUIT)

    t_quit, _, closes = run(scenario())
    code, t_close = closes["/ws/blocking"]
    assert code == 1001
    assert t_close - t_quit < PROMPT
    server.proc.wait(GRACE / 2)


def test_max_requests_recycles_the_worker_and_its_websocket_gets_1012(server_factory):
    server = server_factory(APP, workers=1, cores=10, limits={"max_requests": 4},
                            server={"graceful_timeout": GRACE})
    old = worker_pid(server)

    async def scenario():
        ws = await open_echo(server, "/ws/blocking")
        closing = asyncio.ensure_future(closed_at(ws))
        # Plain requests until the worker has taken on its last one.
        for _ in range(10):
            if closing.done():
                break
            await asyncio.to_thread(server.request, "GET", "/")
            await asyncio.sleep(0.1)
        t_close = await asyncio.wait_for(closing, 5)
        assert ws.close_rcvd and ws.close_rcvd.code == 1012
        return t_close

    t_close = run(scenario())
    assert wait_for(lambda: not alive(old), GRACE / 2, 0.02) is True, \
        "the retiring worker must not wait for its websocket"
    print("max_requests: close frame -> old worker exit %.2f s" % (time.monotonic() - t_close))
    assert worker_pid(server) != old
    server.assert_healthy()


def test_a_suspended_request_keeps_its_graceful_timeout_while_websockets_close(server_factory):
    server = server_factory(APP, workers=1, cores=10, server={"graceful_timeout": GRACE},
                            stats_socket=True)
    old = worker_pid(server)
    slow = {}

    def slow_request():
        slow["response"] = server.request("GET", "/slow?6", timeout=30)
        slow["done"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        assert server.wait_in_request(1) >= 1

        async def scenario():
            sockets = {"/ws/blocking": await open_echo(server, "/ws/blocking")}
            return await close_after_signal(server, sockets, signal.SIGHUP, DRAIN_LOG)

        t_hup, t_drain, closes = run(scenario())
        code, t_close = closes["/ws/blocking"]
        assert code == 1012
        assert t_close - t_drain < PROMPT
        # The websocket is gone, the plain request is not: the old worker still serves it.
        assert alive(old)
        assert "done" not in slow
    finally:
        thread.join(30)
    status, _, body = slow["response"]
    assert status == 200 and body.startswith(b"slept 6.") and b"in pid %d" % old in body, body
    assert wait_for(lambda: not alive(old), GRACE / 2, 0.02) is True
    t_exit = time.monotonic()
    print("HUP -> close %.2f s; slow request done %.2f s after HUP; old worker exit %.2f s "
          "after it" % (t_close - t_hup, slow["done"] - t_hup, t_exit - slow["done"]))
    assert t_exit - slow["done"] < PROMPT
    server.assert_healthy()


class InstalledServer(Server):
    """Started through a script standing for the installed binary, which USR2 re-executes
    (as in test_upgrade.py)."""

    def command(self):
        binary = Path(self.workdir) / "aiowsgi-master"
        binary.write_text("#!/bin/bash\nexec -a \"$0\" %s \"$@\"\n" % find_master())
        binary.chmod(0o755)
        return [str(binary), "-c", str(self.config_path)]


def test_usr2_upgrade_closes_websockets_with_1012_and_the_old_master_exits_at_once(tmp_path):
    pidfile = tmp_path / "master.pid"
    server = InstalledServer(tmp_path, APP, workers=1, cores=10,
                             server={"graceful_timeout": GRACE, "pidfile": str(pidfile)}).start()
    old_master = server.pid

    async def scenario():
        sockets = {}
        for path in ("/ws/blocking", "/ws/reader"):
            sockets[path] = await open_echo(server, path)
        return await close_after_signal(server, sockets, signal.SIGUSR2, "drains and exits")

    t_usr2, t_handover, closes = run(scenario())
    assert t_handover is not None, server.log_text()
    for path, (code, t_close) in closes.items():
        assert code == 1012, (path, code)
        assert t_close - t_handover < PROMPT, (path, t_close - t_handover)
    server.proc.wait(GRACE / 2)  # the old master: not graceful_timeout
    print("USR2 -> hand-over %.2f s, close frames %s; old master exit %.2f s" % (
        t_handover - t_usr2, {p: round(t - t_handover, 3) for p, (_, t) in closes.items()},
        time.monotonic() - t_usr2))
    new_master = int(pidfile.read_text())
    assert new_master != old_master

    async def again():
        ws = await open_echo(server, "/ws/blocking")
        await ws.close()

    run(again())
    os.kill(new_master, signal.SIGTERM)
    assert wait_for(lambda: not alive(new_master), 15)
