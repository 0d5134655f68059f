"""systemd integration of the master, without systemd running: socket activation through
systemd-socket-activate (Debian's systemd package) and a hand-made LISTEN_FDS environment,
and the sd_notify datagrams (READY / RELOADING / STOPPING) on a NOTIFY_SOCKET of our own."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import APPS, find_master, free_port, require_tool, toml_value

ACTIVATE = "/usr/bin/systemd-socket-activate"


def write_config(workdir, listen=(), uwsgi_listen=()):
    path = workdir / "server.toml"
    path.write_text("[server]\nlisten = %s\nuwsgi_listen = %s\nworkers = 1\ncores = 5\n"
                    "graceful_timeout = 5\n[app]\nwsgi_file = %s\n"
                    % (toml_value(list(listen)), toml_value(list(uwsgi_listen)),
                       toml_value(str(APPS / "proxy_app.py"))))
    return path


def get(port, path="/", timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Proc:
    """A process tree in its own session, its output in a file; killed at the end."""

    def __init__(self, workdir, cmd, env=None, pass_fds=()):
        self.log = workdir / "out.log"
        with open(self.log, "wb") as out:
            self.p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=str(workdir),
                                      env=env or dict(os.environ), pass_fds=pass_fds,
                                      start_new_session=True)

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.p.poll() is None or needle in self.text(), self.text()
            assert time.monotonic() < deadline, "no %r in:\n%s" % (needle, self.text())
            time.sleep(0.05)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.p.wait()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.stop()


def test_systemd_socket_activate_passes_the_listen_sockets(tmp_path, procs):
    """systemd-socket-activate binds both addresses and execs the master on the first
    connection; the master serves on the inherited sockets (HTTP and the uwsgi one matched
    by address, whatever their fd order) instead of binding."""
    http_port, uwsgi_port = free_port(), free_port()
    config = write_config(tmp_path, ["127.0.0.1:%d" % http_port], ["127.0.0.1:%d" % uwsgi_port])
    require_tool("systemd-socket-activate", ACTIVATE)
    p = Proc(tmp_path, [ACTIVATE, "-l", "127.0.0.1:%d" % uwsgi_port,
                        "-l", "127.0.0.1:%d" % http_port, "--fdname=uwsgi:http",
                        find_master(), "-c", str(config)])
    procs.append(p)
    p.wait_log("Listening on 127.0.0.1:%d" % http_port)
    # The first connection waits in the backlog while the master boots.
    status, body = get(http_port, "/environ")
    assert status == 200, p.text()
    env = json.loads(body)
    out = p.text()
    assert "socket activation: 2 inherited sockets" in out
    assert "listening on 127.0.0.1:%d (http, from the service manager)" % http_port in out
    assert "listening on 127.0.0.1:%d (uwsgi, from the service manager)" % uwsgi_port in out
    # Same process: systemd-socket-activate execs the master, which is LISTEN_PID.
    assert "Execing" in out
    # Workers and the app do not see the variables meant for the master.
    assert env["inherited"] == {}
    assert p.stop() == 0


def launcher(fds, pid_offset=0):
    """A Python stand-in for a service manager: puts |fds| at 3, 4, ... and execs the master
    with LISTEN_FDS / LISTEN_PID (pid + |pid_offset|, to test a foreign LISTEN_PID)."""
    return [sys.executable, "-c",
            "import os, sys\n"
            "fds = [int(x) for x in sys.argv[1].split(',')]\n"
            "dups = [os.dup(fd) for fd in fds]\n"
            "for i, fd in enumerate(dups):\n"
            "    if fd != 3 + i: os.dup2(fd, 3 + i)\n"
            "    os.set_inheritable(3 + i, True)\n"
            "os.environ['LISTEN_FDS'] = str(len(fds))\n"
            "os.environ['LISTEN_PID'] = str(os.getpid() + %d)\n"
            "os.execv(sys.argv[2], sys.argv[2:])\n" % pid_offset,
            ",".join(str(f) for f in fds)]


def listening(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def test_listen_fds_and_a_configured_address_bound_by_the_master(tmp_path, procs):
    inherited_port, own_port = free_port(), free_port()
    s = listening(inherited_port)
    config = write_config(tmp_path, ["127.0.0.1:%d" % inherited_port, "127.0.0.1:%d" % own_port])
    p = Proc(tmp_path, launcher([s.fileno()]) + [find_master(), "-c", str(config)],
             pass_fds=[s.fileno()])
    procs.append(p)
    s.close()  # only the master holds it now
    p.wait_log("worker 1 ready")
    assert get(inherited_port) == (200, b"Hello World")
    assert get(own_port) == (200, b"Hello World")
    out = p.text()
    assert "listening on 127.0.0.1:%d (http, from the service manager)" % inherited_port in out
    assert "listening on 127.0.0.1:%d (http)\n" % own_port in out
    assert p.stop() == 0


def test_an_inherited_socket_the_config_does_not_list_is_refused(tmp_path, procs):
    stray_port, own_port = free_port(), free_port()
    s = listening(stray_port)
    config = write_config(tmp_path, ["127.0.0.1:%d" % own_port])
    p = Proc(tmp_path, launcher([s.fileno()]) + [find_master(), "-c", str(config)],
             pass_fds=[s.fileno()])
    procs.append(p)
    s.close()
    assert p.p.wait(15) == 2, p.text()  # kExitBindError
    assert ("inherited socket 127.0.0.1:%d (fd 3) matches no [server] listen or uwsgi_listen"
            " address" % stray_port) in p.text()


def test_listen_fds_for_another_pid_are_ignored(tmp_path, procs):
    """LISTEN_PID names another process: the variables are not ours (sd_listen_fds(3)), so
    the master binds its addresses itself."""
    port = free_port()
    config = write_config(tmp_path, ["127.0.0.1:%d" % port])
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        p = Proc(tmp_path, launcher([devnull], pid_offset=1) + [find_master(), "-c", str(config)],
                 pass_fds=[devnull])
    finally:
        os.close(devnull)
    procs.append(p)
    p.wait_log("worker 1 ready")
    assert get(port) == (200, b"Hello World")
    assert "socket activation" not in p.text()
    assert p.stop() == 0


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout=20):
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def close(self):
        self.sock.close()


def test_sd_notify_ready_reloading_stopping(tmp_path, procs):
    port = free_port()
    config = write_config(tmp_path, ["127.0.0.1:%d" % port])
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    p = Proc(tmp_path, [find_master(), "-c", str(config)], env=env)
    procs.append(p)
    try:
        ready = notify.next()
        # READY=1 only once a worker serves: a request right after it succeeds.
        assert ready == "READY=1\nSTATUS=serving\nMAINPID=%d" % p.p.pid, ready
        assert get(port, timeout=2) == (200, b"Hello World")
        status, body = get(port, "/environ")
        assert json.loads(body)["inherited"] == {}  # the app cannot notify in our name

        os.kill(p.p.pid, signal.SIGHUP)
        reloading = notify.next()
        assert reloading.startswith("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC="), reloading
        usec = int(reloading.rsplit("=", 1)[1])
        assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 30
        assert notify.next() == "READY=1\nSTATUS=serving"
        p.wait_log("reload complete")

        os.kill(p.p.pid, signal.SIGTERM)
        assert notify.next() == "STOPPING=1\nSTATUS=stopping"
        assert p.p.wait(15) == 0
    finally:
        notify.close()


def test_a_broken_notify_socket_does_not_stop_the_server(tmp_path, procs):
    """NOTIFY_SOCKET names nothing (the manager went away): the server serves anyway."""
    port = free_port()
    config = write_config(tmp_path, ["127.0.0.1:%d" % port])
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "nobody-listens"))
    p = Proc(tmp_path, [find_master(), "-c", str(config)], env=env)
    procs.append(p)
    p.wait_log("worker 1 ready")
    assert get(port) == (200, b"Hello World")
    assert p.stop() == 0
