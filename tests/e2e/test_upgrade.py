"""USR2 upgrades end to end (SPEC.md "Signals to the master"): the master is started through a
wrapper script standing for the installed binary; the test rewrites the script between start
and USR2, as a package upgrade replaces the file, and the new generation's app reports the
GENERATION variable the script sets."""
import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path

import urllib.request

from conftest import Server, find_master, free_port, read_stats, toml_value, wait_for

APP = '''
import os


def application(environ, start_response):
    body = ("%s %d" % (os.environ.get("GENERATION", "none"), os.getppid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def write_binary(path, generation, broken=False):
    """The 'installed' aiowsgi-master: a script that runs the real one, or exits 1."""
    if broken:
        text = "#!/bin/sh\necho 'this binary is broken' >&2\nexit 1\n"
    else:
        # exec -a keeps this script's path as argv[0]: the master re-execs what it names.
        text = "#!/bin/bash\nexport GENERATION=%s\nexec -a \"$0\" %s \"$@\"\n" % (
            generation, find_master())
    install(path, text)


def install(path, text):
    tmp = Path(str(path) + ".new")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, path)  # as a package manager does: a new file under the old name


class WrappedServer(Server):
    def __init__(self, workdir, app, binary, **kwargs):
        super().__init__(workdir, app, **kwargs)
        self.binary = str(binary)

    def command(self):
        return [self.binary, "-c", str(self.config_path)]


class StatsWrappedServer(WrappedServer):
    """With a [stats] table ({"listen": ..., "metrics": ...}); rewrite_config() after a change."""

    def __init__(self, workdir, app, binary, stats, **kwargs):
        super().__init__(workdir, app, binary, **kwargs)
        self.stats_table = dict(stats)

    def config_text(self):
        return super().config_text() + "\n[stats]\n" + "".join(
            "%s = %s\n" % (k, toml_value(v)) for k, v in self.stats_table.items())

    def rewrite_config(self):
        self.config_path.write_text(self.config_text())


def start(tmp_path, workers=2, stats=None, **server_keys):
    app = tmp_path / "app.py"
    app.write_text(APP)
    binary = tmp_path / "aiowsgi-master"
    write_binary(binary, "one")
    pidfile = tmp_path / "master.pid"
    kwargs = dict(workers=workers, server=dict(server_keys, pidfile=str(pidfile)))
    if stats:
        server = StatsWrappedServer(tmp_path, app, binary, stats, **kwargs).start()
    else:
        server = WrappedServer(tmp_path, app, binary, **kwargs).start()
    server.wait_log("ready (pid", count=workers, timeout=15)
    return server, binary, pidfile


def read_pid(pidfile):
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def master_log(server):
    """The log without the access lines."""
    return "\n".join(l for l in server.log_text().splitlines() if "[access]" not in l)


def generation(server):
    status, _, body = server.request("GET", "/", timeout=10)
    assert status == 200
    return body.decode().split()


def upgrade(server, pidfile):
    """USR2 to the master named by the pidfile; returns the new master's pid."""
    old = read_pid(pidfile)
    os.kill(old, signal.SIGUSR2)
    missing = []

    def switched():
        if not pidfile.exists():
            missing.append(time.monotonic())
        return read_pid(pidfile) not in (None, old)
    assert wait_for(switched, timeout=20, interval=0.001), server.log_text()
    assert not missing, "the pidfile went missing during the upgrade"
    assert wait_for(lambda: not alive(old) or _zombie(old), timeout=20), server.log_text()
    return read_pid(pidfile)


def _zombie(pid):
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def stop_master(pid, timeout=15):
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not alive(pid) or _zombie(pid), timeout=timeout)


class Load:
    """Bounded request loops on 127.0.0.1: keep-alive clients and new-connection clients."""

    def __init__(self, port, keepalive=3, fresh=2):
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failed = []
        self.refused = 0
        self.retried = 0  # requests re-sent after the server closed an idle keep-alive connection
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.keepalive_loop) for _ in range(keepalive)]
        self.threads += [threading.Thread(target=self.fresh_loop) for _ in range(fresh)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def record(self, error=None):
        with self.lock:
            if error is None:
                self.ok += 1
            elif isinstance(error, ConnectionRefusedError):
                self.refused += 1
            else:
                self.failed.append(repr(error))

    def one(self, conn):
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("status %d %r" % (resp.status, body))
        return resp

    def keepalive_loop(self):
        deadline = time.monotonic() + 60
        conn = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                resp = self.one(conn)
                self.record()
                if resp.will_close:
                    conn.close()
                    conn = None
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as e:
                conn.close()
                conn = None
                if not reused:
                    self.record(e)
                else:
                    with self.lock:
                        self.retried += 1
                # A keep-alive connection the server closed while idle: a client retries
                # on a new connection (RFC 9112 9.3.1), and that one must succeed.
            except (OSError, http.client.HTTPException, RuntimeError) as e:
                conn.close()
                conn = None
                self.record(e)

    def fresh_loop(self):
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.one(conn)
                self.record()
            except (OSError, http.client.HTTPException, RuntimeError) as e:
                self.record(e)
            finally:
                conn.close()


def test_usr2_under_load_refuses_nothing_and_the_new_binary_serves(tmp_path):
    server, binary, pidfile = start(tmp_path)
    old = read_pid(pidfile)
    assert old == server.pid
    assert generation(server)[0] == "one"
    write_binary(binary, "two")
    with Load(server.port) as load:
        time.sleep(3)
        new = upgrade(server, pidfile)
        time.sleep(7)
    assert new != old
    assert load.refused == 0, server.log_text()
    assert load.failed == [], (load.failed[:5], server.log_text())
    assert load.ok > 100
    print("upgrade under load: %d requests, 0 failed, 0 refused, %d keep-alive retries"
          % (load.ok, load.retried))
    gen, parent = generation(server)
    assert (gen, int(parent)) == ("two", new), master_log(server)
    assert server.proc.wait(15) == 0  # the old master drained and exited
    log = server.log_text()
    assert "upgrading: started" in log and "drains and exits" in log
    # The hand-over waited for all the new master's workers, not just the first.
    before = log.split("drains and exits")[0]
    new_lines = [l for l in before.splitlines() if "[%d] [master]" % new in l]
    assert sum(" ready (pid" in l for l in new_lines) == 2, before
    stop_master(new)
    assert not pidfile.exists()


def test_usr2_with_a_broken_binary_keeps_serving_and_a_later_usr2_works(tmp_path):
    server, binary, pidfile = start(tmp_path)
    old = server.pid
    write_binary(binary, "two", broken=True)
    os.kill(old, signal.SIGUSR2)
    text = server.wait_log("upgrade failed", timeout=15)
    assert "upgrade failed: the new master" in text and "exited with status 1" in text, text
    assert "this binary is broken" in text
    assert read_pid(pidfile) == old and alive(old)
    assert generation(server)[0] == "one"
    write_binary(binary, "three")
    new = upgrade(server, pidfile)
    assert new != old
    assert generation(server) == ["three", str(new)]
    stop_master(new)


def test_usr2_then_hup_then_term_on_the_new_master(tmp_path):
    server, binary, pidfile = start(tmp_path)
    write_binary(binary, "two")
    new = upgrade(server, pidfile)
    server.proc.wait(15)
    os.kill(new, signal.SIGHUP)
    text = server.wait_log("reload complete", timeout=20)
    assert "reload complete" in text, text
    assert generation(server)[0] == "two"
    # And it upgrades again: the channel and the pidfile work from the new master too.
    write_binary(binary, "three")
    newer = upgrade(server, pidfile)
    assert generation(server) == ["three", str(newer)]
    stop_master(newer)
    assert not pidfile.exists()
    assert "master exiting with status 0" in server.log_text()


def test_a_second_usr2_during_an_upgrade_is_ignored(tmp_path):
    server, binary, pidfile = start(tmp_path, workers=1)
    # A new binary that takes its time before it starts serving.
    real = find_master()
    install(binary,
            "#!/bin/bash\nsleep 2\nexport GENERATION=two\nexec -a \"$0\" %s \"$@\"\n" % real)
    old = server.pid
    os.kill(old, signal.SIGUSR2)
    server.wait_log("upgrading: started", timeout=10)
    os.kill(old, signal.SIGUSR2)
    text = server.wait_log("SIGUSR2 ignored: an upgrade is already under way", timeout=10)
    assert "SIGUSR2 ignored: an upgrade is already under way" in text, text
    assert wait_for(lambda: read_pid(pidfile) not in (None, old), timeout=20), server.log_text()
    new = read_pid(pidfile)
    assert server.proc.wait(15) == 0
    assert server.log_text().count("upgrading: started") == 1
    assert generation(server)[0] == "two"
    stop_master(new)


def test_under_systemd_the_new_master_reports_its_pid_and_the_old_one_no_stop(tmp_path,
                                                                               monkeypatch):
    """NotifyAccess=all: the new master says MAINPID=<its pid> with READY=1; the old master
    says nothing that would make systemd think the service stops."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        server, binary, pidfile = start(tmp_path, workers=1)
        first = notify.recv(4096).decode()
        assert "READY=1" in first and "MAINPID=%d" % server.pid in first
        write_binary(binary, "two")
        new = upgrade(server, pidfile)
        assert server.proc.wait(15) == 0
        said = []
        notify.settimeout(0.5)
        try:
            while True:
                said.append(notify.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("READY=1" in m and "MAINPID=%d" % new in m for m in said), said
        assert not any("STOPPING=1" in m for m in said), said
        stop_master(new)
        notify.settimeout(10)
        assert "STOPPING=1" in notify.recv(4096).decode()
    finally:
        notify.close()


def test_term_during_an_upgrade_stops_the_new_master_too(tmp_path):
    server, binary, pidfile = start(tmp_path, workers=1)
    install(binary, "#!/bin/bash\nsleep 3\nexec -a \"$0\" %s \"$@\"\n" % find_master())
    os.kill(server.pid, signal.SIGUSR2)
    text = server.wait_log("upgrading: started", timeout=10)
    child = int(text.split("upgrading: started ")[1].split(" as pid ")[1].split(";")[0])
    os.kill(server.pid, signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert wait_for(lambda: not alive(child) or _zombie(child), timeout=15), master_log(server)
    assert "upgrade failed: this master is stopping" in master_log(server)
    assert not pidfile.exists()


def test_a_new_master_never_ready_within_graceful_timeout_is_stopped(tmp_path):
    server, binary, pidfile = start(tmp_path, workers=1, graceful_timeout=2)
    old = server.pid
    # Runs, but never says it serves (nor exits by itself).
    install(binary, "#!/bin/sh\nexec sleep 60\n")
    os.kill(old, signal.SIGUSR2)
    text = server.wait_log("upgrade failed", timeout=15)
    assert "not ready within graceful_timeout" in text, text
    text = server.wait_log("was killed by signal 15", timeout=15)
    assert "was killed by signal 15" in text, text
    assert read_pid(pidfile) == old and alive(old)
    assert generation(server)[0] == "one"
    write_binary(binary, "two")
    new = upgrade(server, pidfile)
    assert generation(server) == ["two", str(new)]
    stop_master(new)


def test_a_new_master_whose_old_one_gave_up_stops_itself(tmp_path):
    """The new binary outlives the old master's SIGTERM (its wrapper ignores it until the exec):
    once ready it finds nobody to hand over to and stops rather than serve beside no one."""
    server, binary, pidfile = start(tmp_path, workers=1)
    marker = tmp_path / "trapped"
    install(binary, "#!/bin/bash\ntrap '' TERM\ntouch %s\nsleep 2\nexec -a \"$0\" %s \"$@\"\n"
            % (marker, find_master()))
    os.kill(server.pid, signal.SIGUSR2)
    text = server.wait_log("upgrading: started", timeout=10)
    child = int(text.split("upgrading: started ")[1].split(" as pid ")[1].split(";")[0])
    assert wait_for(marker.exists, timeout=10)
    os.kill(server.pid, signal.SIGTERM)
    assert server.proc.wait(15) == 0
    text = server.wait_log("it gave up the upgrade or is gone; this master stops", timeout=20)
    assert "it gave up the upgrade or is gone; this master stops" in text, text
    assert wait_for(lambda: not alive(child) or _zombie(child), timeout=15), master_log(server)
    assert not pidfile.exists()


def read_metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.status


class StatsPoller:
    """Reads the stats document (and GET /metrics) in a loop; every answer's pid, every error."""

    def __init__(self, addr, metrics_port=None):
        self.addr, self.metrics_port = addr, metrics_port
        self.pids, self.errors, self.metrics = [], [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)

    def loop(self):
        deadline = time.monotonic() + 90
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.pids.append(read_stats(self.addr)["pid"])
                if self.metrics_port:
                    assert read_metrics(self.metrics_port) == 200
                    self.metrics += 1
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.errors.append(repr(e))
            time.sleep(0.02)


def listening_inode(addr):
    """The socket inode of the listening socket on "127.0.0.1:PORT" or "unix:/path"."""
    if addr.startswith("unix:"):
        for f in (l.split() for l in Path("/proc/net/unix").read_text().splitlines()[1:]):
            if len(f) >= 8 and f[7] == addr[5:] and f[3] == "00010000":  # __SO_ACCEPTCON
                return f[6]
    else:
        port = int(addr.rsplit(":", 1)[1])
        for f in (l.split() for l in Path("/proc/net/tcp").read_text().splitlines()[1:]):
            if f[1] == "0100007F:%04X" % port and f[3] == "0A":  # TCP_LISTEN
                return f[9]
    raise AssertionError("nothing listens on %s" % addr)


def socket_inodes(pid):
    found = set()
    for fd in Path("/proc/%d/fd" % pid).iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(link[8:-1])
    return found


def assert_only_the_master_holds(addr, master, workers):
    """The stats socket at addr is the master's: none of its workers inherited it."""
    inode = listening_inode(addr)
    assert inode in socket_inodes(master)
    assert workers
    for pid in workers:
        assert inode not in socket_inodes(pid), "worker %d inherited %s" % (pid, addr)


def upgrade_with_stats(tmp_path, stats_addr, metrics_port=None):
    stats = {"listen": stats_addr}
    if metrics_port:
        stats["metrics"] = "127.0.0.1:%d" % metrics_port
    server, binary, pidfile = start(tmp_path, stats=stats)
    old = server.pid
    assert read_stats(stats_addr)["pid"] == old
    write_binary(binary, "two")
    with Load(server.port, keepalive=1, fresh=1) as load, \
            StatsPoller(stats_addr, metrics_port) as poller:
        time.sleep(1)
        new = upgrade(server, pidfile)
        assert server.proc.wait(15) == 0, master_log(server)  # the old master is gone
        time.sleep(1)
    assert new != old
    assert load.refused == 0 and load.failed == [], (load.failed[:5], master_log(server))
    assert poller.errors == [], (poller.errors[:5], master_log(server))
    # Either master answered while both ran; the new one alone once the old one exited.
    assert set(poller.pids) <= {old, new} and poller.pids[-1] == new, poller.pids
    assert len(poller.pids) > 20 and (not metrics_port or poller.metrics > 20)
    assert read_stats(stats_addr)["pid"] == new
    workers = [w["pid"] for w in read_stats(stats_addr)["workers"] if w["pid"] > 0]
    assert_only_the_master_holds(stats_addr, new, workers)
    if metrics_port:
        assert read_metrics(metrics_port) == 200
        assert_only_the_master_holds("127.0.0.1:%d" % metrics_port, new, workers)
    assert generation(server) == ["two", str(new)]
    log = master_log(server)
    new_lines = "\n".join(l for l in log.splitlines() if "[%d] [master]" % new in l)
    assert "stats server on %s, from the previous master" % stats_addr in new_lines, log
    if metrics_port:
        assert "/metrics) on 127.0.0.1:%d, from the previous master" % metrics_port in new_lines
    return server, new


def test_usr2_hands_the_tcp_stats_and_metrics_sockets_to_the_new_master(tmp_path):
    server, new = upgrade_with_stats(tmp_path, "127.0.0.1:%d" % free_port(), free_port())
    stop_master(new)


def test_usr2_hands_a_unix_stats_socket_to_the_new_master_and_keeps_its_file(tmp_path):
    path = tmp_path / "stats.sock"
    server, new = upgrade_with_stats(tmp_path, "unix:%s" % path)
    # The old master exited without removing the file the new one serves.
    assert path.exists()
    # And the new master hands it over again.
    write_binary(tmp_path / "aiowsgi-master", "three")
    newer = upgrade(server, tmp_path / "master.pid")
    assert wait_for(lambda: read_stats("unix:%s" % path)["pid"] == newer, timeout=15)
    stop_master(newer)


def test_usr2_binds_a_changed_stats_address_and_the_old_one_closes(tmp_path):
    first = "127.0.0.1:%d" % free_port()
    server, binary, pidfile = start(tmp_path, stats={"listen": first})
    old = server.pid
    second = "127.0.0.1:%d" % free_port()
    server.stats_table["listen"] = second
    server.rewrite_config()
    write_binary(binary, "two")
    new = upgrade(server, pidfile)
    assert server.proc.wait(15) == 0, master_log(server)
    assert read_stats(second)["pid"] == new
    host, port = first.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        raise AssertionError("%s still answers after the old master exited" % first)
    except ConnectionRefusedError:
        pass
    assert "stats server on %s" % second in master_log(server)
    assert old != new
    stop_master(new)
