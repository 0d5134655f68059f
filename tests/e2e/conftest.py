"""End-to-end harness: start a real aiowsgi-master on loopback, talk HTTP to it, stop it.

The binary comes from $AIOWSGI_MASTER (CTest sets it), else the first build*/aiowsgi-master
under the repository. AIOWSGI_E2E_BACKEND=uwsgi runs the same tests against uWSGI's asyncio
engine instead (a cross-check of the tests themselves; uWSGI ignores [limits] and lacks
several behaviours SPEC.md requires, so some tests fail there by design).

Servers are module-scoped: a test module starts the servers it needs once
(`server_factory(app, ...)`) and every test in it shares them. A server a test starts itself
(in its body or a function-scoped fixture) is stopped when that test ends, passed or failed
(`stop_servers_the_test_started`), so a failure cannot leave processes holding ports and CPU.

Modules run side by side (one CTest entry each, `ctest -j2`), so nothing here may assume it
has the machine to itself: ports come from free_port() (random, outside the kernel's
ephemeral range), waits poll observable state (log lines, the stats socket, pids) with
generous deadlines, and wall-clock bounds leave several times the expected duration.

Module-level markers read by CMakeLists.txt: `UVLOOP = True` (also run the module with
[app] loop = "uvloop") and `pytest.mark.slow` (the slow tier, `ctest -L slow`).
"""
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from wire_clients import RawConnection

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
EXAMPLES = REPO / "examples"
BACKEND = os.environ.get("AIOWSGI_E2E_BACKEND", "aiowsgi")
# AIOWSGI_E2E_LOOP=uvloop runs every server with [app] loop = "uvloop" (CTest e2e_uvloop).
LOOP = os.environ.get("AIOWSGI_E2E_LOOP", "")
# AIOWSGI_E2E_PRELOAD=1 runs every server with [server] preload = true.
PRELOAD = os.environ.get("AIOWSGI_E2E_PRELOAD", "") not in ("", "0")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_live_servers = []


def find_master():
    path = os.environ.get("AIOWSGI_MASTER")
    if path:
        return path
    candidates = sorted(glob.glob(str(REPO / "build" / "aiowsgi-master")) +
                        glob.glob(str(REPO / "build-*" / "aiowsgi-master")),
                        key=lambda p: -os.path.getmtime(p))
    if not candidates:
        raise RuntimeError("no aiowsgi-master: set AIOWSGI_MASTER or build one under build*/")
    return candidates[0]


def require_tool(name, path=None):
    """The path of the program `name` (or `path`), or skip the calling test with a reason.

    A plain clone without the tool skips; CI, which installed every tool (.ci/deps), sets
    AIOWSGI_REQUIRE_TOOLS=1 so that a missing tool fails instead of hiding a test.
    """
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if found:
        return found
    why = "%s is not installed (bash .ci/deps installs it)" % name
    if os.environ.get("AIOWSGI_REQUIRE_TOOLS") == "1":
        pytest.fail(why + "; AIOWSGI_REQUIRE_TOOLS=1")
    pytest.skip(why)


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS = random.SystemRandom()


def free_port():
    """A TCP port free on 127.0.0.1 now, for a server to bind shortly after.

    Chosen at random below the ephemeral range, not by bind(port 0): the kernel hands out
    ports 0-binds and outgoing connections from that range, so a probed port could be taken
    by another module's client socket (or given to a parallel module's probe) before the
    server binds it. Server.start() still retries when a bind loses the race.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(200):
        port = _PORTS.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in %d..%d" % (low, high - 1))


def wait_for(predicate, timeout=15.0, interval=0.05):
    """Polls predicate() until it returns a true value; returns it (or the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def read_stats(addr, timeout=5):
    """The stats socket's JSON document ("HOST:PORT" or "unix:/path")."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    data = b""
    with s:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join("%s = %s" % (json.dumps(k), toml_value(v))
                                for k, v in value.items()) + " }"
    raise TypeError(value)


class Server:
    """One aiowsgi-master (or uWSGI) process tree, its config and its log."""

    # What request() (and so readiness) connects with: a subclass may send bytes first.
    connection_class = http.client.HTTPConnection

    def __init__(self, workdir, app, *, workers=1, cores=10, limits=None, env=None,
                 server=None, log=None, ready_path="/", app_options=None, static=None,
                 stats_socket=False):
        self.workdir = Path(workdir)
        self.app = str(app)
        self.workers, self.cores = workers, cores
        self.limits = dict(limits or {})
        self.env = dict(env or {})
        self.server_extra = dict(server or {})
        self.log_extra = dict(log or {})
        self.app_extra = dict(app_options or {})  # more [app] keys (loop, uwsgi_compat, ...)
        self.static = dict(static or {})  # [static] keys (map, expires)
        self.ready_path = ready_path
        # stats_socket: a [stats] listen unix socket in the workdir, to observe the cores
        # (which are in a request) instead of sleeping until they probably are.
        self.stats_socket = stats_socket
        self.stats_addr = "unix:" + str(self.workdir / "stats.sock") if stats_socket else None
        self.port = None
        self.proc = None
        self.log_path = self.workdir / "server.log"
        self.config_path = self.workdir / "server.toml"
        self.exit_status = None
        # Run in the server's process before exec (e.g. lowering its RLIMIT_NOFILE).
        self.preexec_fn = None

    # ---- lifecycle ----
    def config_text(self):
        server = {"listen": ["127.0.0.1:%d" % self.port], "workers": self.workers,
                  "cores": self.cores, "graceful_timeout": 5}
        if PRELOAD:
            server["preload"] = True
        server.update(self.server_extra)
        app = {"wsgi_file": self.app}
        if self.env:
            app["env"] = self.env
        if LOOP:
            app["loop"] = LOOP
        app.update(self.app_extra)
        log = {"level": "info"}
        log.update(self.log_extra)
        out = []
        stats = {"listen": self.stats_addr} if self.stats_socket else {}
        for table, values in (("server", server), ("app", app), ("limits", self.limits),
                              ("log", log), ("static", self.static), ("stats", stats)):
            if values:
                out.append("[%s]" % table)
                out.extend("%s = %s" % (k, toml_value(v)) for k, v in values.items())
                out.append("")
        return "\n".join(out)

    def command(self):
        if BACKEND.startswith("uwsgi"):
            cmd = ["uwsgi", "--plugins", "python3,asyncio_python3,greenlet_python3",
                   "--asyncio", str(self.cores), "--greenlet",
                   "--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", self.app,
                   "--processes", str(self.workers), "--die-on-term"]
            if self.workers > 1:
                cmd.append("--master")
            for k, v in self.env.items():
                cmd += ["--env", "%s=%s" % (k, v)]
            return cmd
        return [find_master(), "-c", str(self.config_path)]

    def start(self):
        last_error = None
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.config_path.write_text(self.config_text())
            env = dict(os.environ)
            if BACKEND.startswith("uwsgi"):
                env["PYTHONUNBUFFERED"] = "1"  # aiowsgi must do without it (SPEC.md)
            with open(self.log_path, "ab") as logf:
                logf.write(b"==== start %s\n" % " ".join(self.command()).encode())
                logf.flush()
                self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=str(self.workdir),
                                             env=env, start_new_session=True,
                                             preexec_fn=self.preexec_fn)
            try:
                self.wait_ready()
                _live_servers.append(self)
                return self
            except RuntimeError as e:
                last_error = e
                self.kill()
                if "in use" not in self.log_text():
                    break
        raise last_error

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s during start-up; log:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            try:
                status, _, _ = self.request("GET", self.ready_path, timeout=2)
                if status == 200:
                    return
                last = "status %d" % status
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError("server not ready after %.0f s (%s); log:\n%s"
                           % (START_TIMEOUT, last, self.log_text()))

    def stop(self):
        """SIGTERM (graceful), SIGKILL past STOP_TIMEOUT. Returns the master's exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if BACKEND.startswith("uwsgi") and self.workers == 1
                                  else signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.exit_status = self.proc.returncode
        self._kill_group()
        if self in _live_servers:
            _live_servers.remove(self)
        return self.exit_status

    def kill(self):
        self._kill_group()
        if self.proc is not None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self in _live_servers:
            _live_servers.remove(self)

    def _kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def preload_pids(self):
        """Every preload process the master started ([server] preload), from its log."""
        marker = "preload process started, pid "
        return [int(line.split(marker, 1)[1].split()[0])
                for line in self.log_text().splitlines() if marker in line]

    def group_pids(self, include_preload=False):
        """Live processes of the server's session (master + workers), zombies excluded; the
        preload processes too with `include_preload`."""
        skip = set() if include_preload else set(self.preload_pids())
        pids = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[0] = state, [3] = session id
            pid = int(stat.split("/")[2])
            if int(fields[3]) == self.proc.pid and fields[0] != "Z" and pid not in skip:
                pids.append(pid)
        return pids

    # ---- observation ----
    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=15.0, count=1):
        """Waits until `needle` occurs `count` times in the log; returns the log text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if text.count(needle) >= count or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def stats(self):
        return read_stats(self.stats_addr)

    def cores_in_request(self):
        """How many cores (of every worker) are inside a request now (stats socket)."""
        return sum(c["in_request"] for w in self.stats()["workers"] for c in w["cores"])

    def wait_in_request(self, count=1, timeout=15.0):
        """Waits until at least `count` cores are inside a request; returns how many are."""
        assert self.stats_addr, "wait_in_request needs Server(..., stats_socket=True)"
        return wait_for(lambda: self.cores_in_request() >= count and self.cores_in_request(),
                        timeout) or self.cores_in_request()

    def output_lines(self, line):
        """How many log lines are `line` as printed by the app: the line, or a log prefix
        then the line; a traceback quoting the source (`print("...")`) does not count."""
        n = 0
        for got in self.log_text().splitlines():
            got = got.rstrip()
            if got == line or (got.endswith(line) and got[-len(line) - 1] in " ]\t:"):
                n += 1
        return n

    def wait_output_line(self, line, count=1, timeout=15.0):
        """Waits until the app's output `line` appeared `count` times; returns how many."""
        deadline = time.monotonic() + timeout
        while self.output_lines(line) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.output_lines(line)

    # ---- clients ----
    def request(self, method, path, body=None, headers=None, timeout=10):
        """One request on a fresh http.client connection: (status, headers dict, body)."""
        conn = self.connection_class("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def connect(self, timeout=10):
        return RawConnection(self.port, timeout)

    def assert_healthy(self):
        """A normal request still works (after an error or a bad client)."""
        status, _, body = self.request("GET", self.ready_path)
        assert status == 200, "server no longer serves %s: status %d" % (self.ready_path, status)
        return body


def request_every_core(server, path, release, timeout=15.0):
    """Reaches every worker on purpose, not by chance: sends one request for `path` per core
    of every worker, each only once the ones before it are inside the app (stats socket). A
    worker whose cores are all busy takes no new connection, so each worker gets exactly
    `cores` of them whatever the accept balancing does. `path` must hold its core until
    `release()` has been called. Returns the response bodies, in sending order."""
    assert server.stats_addr, "request_every_core needs Server(..., stats_socket=True)"
    total = server.workers * server.cores
    conns = []
    try:
        for n in range(1, total + 1):
            conn = RawConnection(server.port, timeout=timeout)
            conns.append(conn)
            conn.send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
            got = server.wait_in_request(n, timeout)
            assert got >= n, "%d of %d requests reached a core" % (got, n)
        release()
        return [conn.read_response().body for conn in conns]
    finally:
        for conn in conns:
            conn.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the slow tier (ctest -L slow): soak, bursts, "
                                       "slowloris; CTest runs these tests in e2e_slow_MODULE")


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory):
    """Starts servers for one test module; stops them (SIGTERM, then SIGKILL) at its end."""
    started = []

    def make(app, **kwargs):
        workdir = tmp_path_factory.mktemp(Path(str(app)).stem)
        server = Server(workdir, app, **kwargs)
        # Stopped at the module's end, failed or not: a module-scoped fixture may start it
        # lazily during a test and share it with the tests after.
        server.factory_owned = True
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def stop_servers_the_test_started():
    """Stops, when the test ends (failed or not), every server started during it, except those
    of server_factory, which stops them when the module ends (a module-scoped fixture may
    start one lazily in its first test and share it with the others)."""
    before = list(_live_servers)
    yield
    for server in [s for s in _live_servers if not any(s is b for b in before)]:
        if not getattr(server, "factory_owned", False):
            server.stop()


def pytest_sessionfinish(session, exitstatus):
    # CTest runs a module's fast and slow tests as two entries (-m "not slow" / -m slow); a
    # module whose tests are all in the other entry collects none (exit 5), which is no
    # failure. An import or collection error is exit 2 and still fails.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("\nno tests selected here (all deselected by -m)")
        session.exitstatus = pytest.ExitCode.OK


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in list(_live_servers):
            text = server.log_text()
            tail = "\n".join(text.splitlines()[-150:])
            report.sections.append(("server log %s (port %s, last 150 lines)"
                                    % (Path(server.app).name, server.port), tail))
