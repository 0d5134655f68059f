"""A real nginx (Debian's nginx-light, started here with its own prefix and config on
127.0.0.1) in front of a real aiowsgi, through the shipped examples/nginx/*.conf: HTTP
proxy_pass with a keep-alive upstream, and uwsgi_pass to a server.uwsgi_listen socket.
GET, POST with a body, a streamed response and the seed's suspended request, each through
both."""
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import APPS, EXAMPLES, REPO, Server, free_port, require_tool

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module", autouse=True)
def _nginx_installed():  # autouse: runs before the module's other fixtures start nginx
    require_tool("nginx", NGINX)


class Nginx:
    """nginx -p PREFIX with examples/nginx/<name>.conf (or a site file given by its path)
    rewritten to free loopback ports."""

    def __init__(self, prefix, sites):
        self.prefix = Path(prefix)
        self.sites = sites  # [(example file name, {text: replacement})]
        self.ports = {}
        self.proc = None

    def write_config(self):
        p = self.prefix
        for d in ("client_body", "proxy", "uwsgi", "fastcgi", "scgi"):
            (p / d).mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/nginx/uwsgi_params", p / "uwsgi_params")
        includes = []
        for name, replacements in self.sites:
            # An example's name, or the path of a site file a test wrote.
            text = (EXAMPLES / "nginx" / name).read_text()
            port = free_port()
            self.ports[name] = port
            assert "listen 80;" in text
            text = text.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
            for old, new in replacements.items():
                assert old in text, (name, old)
                text = text.replace(old, new)
            (p / Path(name).name).write_text(text)
            includes.append("    include %s;" % (p / Path(name).name))
        # As root, nginx's workers would switch to "nobody", who cannot enter pytest's
        # private tmp dirs; the test's nginx stays the user that runs the test.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (p / "nginx.conf").write_text(
            "%sworker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    access_log %s/access.log;\n"
            "    client_body_temp_path %s/client_body;\n"
            "    proxy_temp_path %s/proxy;\n"
            "    uwsgi_temp_path %s/uwsgi;\n"
            "    fastcgi_temp_path %s/fastcgi;\n"
            "    scgi_temp_path %s/scgi;\n"
            "%s\n}\n" % ((user,) + (p,) * 8 + ("\n".join(includes),)))

    def start(self):
        self.write_config()
        cmd = [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
               "-e", str(self.prefix / "error.log")]
        check = subprocess.run(cmd + ["-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        for port in self.ports.values():
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.connect()
                    conn.close()
                    break
                except OSError:
                    assert self.proc.poll() is None, self.error_log()
                    assert time.monotonic() < deadline, "nginx did not listen:\n" + self.error_log()
                    time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def error_log(self):
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """aiowsgi (HTTP + uwsgi listeners, 1 worker, 10 cores) behind nginx (both examples)."""
    uwsgi_port = free_port()
    server = Server(tmp_path_factory.mktemp("aiowsgi"), APPS / "proxy_app.py", workers=1,
                    cores=10, server={"uwsgi_listen": ["127.0.0.1:%d" % uwsgi_port]})
    server.start()
    nginx = Nginx(tmp_path_factory.mktemp("nginx"), [
        ("proxy_pass.conf", {"127.0.0.1:8000": "127.0.0.1:%d" % server.port}),
        ("uwsgi_pass.conf", {"127.0.0.1:8001": "127.0.0.1:%d" % uwsgi_port}),
    ])
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()


VIAS = ["proxy_pass.conf", "uwsgi_pass.conf"]


def request(port, method, path, body=None, headers=None, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def context(stack):
    server, nginx = stack
    return "aiowsgi log:\n%s\nnginx error log:\n%s" % (server.log_text()[-3000:],
                                                       nginx.error_log()[-3000:])


@pytest.mark.parametrize("via", VIAS)
def test_get(stack, via):
    port = stack[1].ports[via]
    status, headers, body = request(port, "GET", "/")
    assert (status, body) == (200, b"Hello World"), context(stack)
    assert headers["content-type"] == "text/plain"
    assert headers["server"].startswith("nginx")


@pytest.mark.parametrize("via", VIAS)
def test_environ(stack, via):
    port = stack[1].ports[via]
    status, _, body = request(port, "GET", "/environ?a=1&b=%20x", headers={"X-Custom": "yes"})
    assert status == 200, context(stack)
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["HTTP_X_CUSTOM"] == "yes"
    # proxy_pass.conf forwards the Host header as sent; Debian's uwsgi_params sets HTTP_HOST
    # to nginx's $host, which has no port (see the comment in /etc/nginx/uwsgi_params).
    if via == "proxy_pass.conf":
        assert env["HTTP_HOST"] == "127.0.0.1:%d" % port
    else:
        assert env["HTTP_HOST"] == "127.0.0.1"
        assert env["SERVER_PORT"] == str(port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")


@pytest.mark.parametrize("via", VIAS)
def test_post_with_body(stack, via):
    port = stack[1].ports[via]
    payload = os.urandom(300 * 1024)  # more than nginx keeps in memory: goes via its temp file
    status, headers, body = request(port, "POST", "/echo", body=payload,
                                    headers={"Content-Type": "application/octet-stream"})
    assert status == 200, context(stack)
    assert headers["x-read"] == str(len(payload))
    assert headers["x-content-length"] == str(len(payload))
    assert body == payload


@pytest.mark.parametrize("via", VIAS)
def test_streaming_response(stack, via):
    """The chunks arrive as the app yields them, not all at the end."""
    port = stack[1].ports[via]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        t0 = time.monotonic()
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.status == 200, context(stack)
        first = resp.read1(65536)
        t_first = time.monotonic() - t0
        rest = resp.read()
        t_all = time.monotonic() - t0
    finally:
        conn.close()
    assert first.startswith(b"chunk 0\n")
    assert first + rest == b"chunk 0\nchunk 1\nchunk 2\n"
    assert t_all >= 0.9, "two 0.5 s pauses took %.2f s" % t_all
    assert t_first < 0.5, "first chunk after %.2f s: buffered until the end?" % t_first


@pytest.mark.parametrize("via", VIAS)
def test_seed_suspended_request(stack, via):
    """examples/seed/suspend.py: five requests suspended for 2 s each share one worker."""
    port = stack[1].ports[via]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: request(port, "GET", "/suspend"), range(5)))
    elapsed = time.monotonic() - t0
    for status, _, body in results:
        assert (status, body) == (200, b"Hello World"), context(stack)
    assert 1.9 <= elapsed < 3.9, "5 suspended requests took %.2f s on one worker" % elapsed


def test_proxy_pass_reuses_upstream_connections(stack):
    """keepalive in the upstream block: consecutive requests reach aiowsgi on the same
    connection (same client port seen by the app)."""
    port = stack[1].ports["proxy_pass.conf"]
    ports = set()
    for _ in range(5):
        # nginx's X-Forwarded-For would make REMOTE_PORT the client's (none: it gives no
        # port); an "unknown" hop before it keeps the peer's, nginx's upstream connection.
        status, _, body = request(port, "GET", "/environ", headers={"X-Forwarded-For": "unknown"})
        assert status == 200, context(stack)
        ports.add(json.loads(body)["REMOTE_PORT"])
    assert len(ports) == 1, "nginx opened %d upstream connections for 5 requests" % len(ports)


@pytest.mark.parametrize("via", VIAS)
def test_errors_pass_through(stack, via):
    port = stack[1].ports[via]
    status, _, body = request(port, "GET", "/nope")
    assert (status, body) == (404, b"Not Found\n"), context(stack)
    # And the server keeps serving afterwards.
    assert request(port, "GET", "/")[0] == 200
