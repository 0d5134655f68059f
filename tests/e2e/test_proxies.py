"""Clients behind proxies and apps under a URL prefix: [server] forwarded_allow_ips
(X-Forwarded-For/-Proto/-Host/-Port, RFC 7239 Forwarded), [server] proxy_protocol (PROXY v1
and v2), [app] mount and SCRIPT_NAME. With the real proxies in front: Debian's haproxy
(send-proxy-v2; mode http with option forwardfor) and nginx (proxy_set_header
X-Forwarded-For / X-Forwarded-Proto / X-Forwarded-Prefix). Clients that must not look like
the proxy connect from 127.0.0.2 (all of 127/8 is loopback on Linux)."""
import http.client
import json
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import APPS, Server, free_port, require_tool, wait_for
from test_nginx import Nginx

APP = APPS / "proxy_app.py"
CLIENT = "127.0.0.2"  # a client address other than the proxy's (127.0.0.1)
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def environ_of(server, path="/environ", headers=None):
    status, _, body = server.request("GET", path, headers=headers)
    assert status == 200, (status, body, server.log_text()[-2000:])
    return json.loads(body)


def assert_logged(server, needle):
    """The access line `needle` reaches the log (lines are written at least every second)."""
    assert needle in server.wait_log(needle), server.log_text()[-3000:]


def http_get(port, path, headers=None, source=None, prefix=b""):
    """GET on a fresh connection from `source`, `prefix` bytes (a PROXY header) sent first:
    (status, headers, body), or None when the server closed the connection unanswered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0) if source else None)
    try:
        head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % path
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        try:
            sock.sendall(prefix + head.encode("latin-1") + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return None
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def v1(source, port=4711):
    family = "TCP6" if ":" in source else "TCP4"
    dest = "::1" if family == "TCP6" else "127.0.0.1"
    return ("PROXY %s %s %s %d 8000\r\n" % (family, source, dest, port)).encode()


def v2(source=None, port=4711, local=False):
    if local:
        return V2_SIG + b"\x20\x00\x00\x00"
    src = socket.inet_pton(socket.AF_INET, source)
    body = src + socket.inet_pton(socket.AF_INET, "127.0.0.1") + struct.pack("!HH", port, 8000)
    return V2_SIG + b"\x21\x11" + struct.pack("!H", len(body)) + body


class ProxyProtocolServer(Server):
    """A server whose listeners want a PROXY header: its own requests (readiness included)
    come as if relayed for 192.0.2.1."""

    class connection_class(http.client.HTTPConnection):
        def connect(self):
            super().connect()
            self.sock.sendall(v1("192.0.2.1"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Defaults: loopback is trusted (forwarded_allow_ips = ["127.0.0.1", "::1"])."""
    server = Server(tmp_path_factory.mktemp("plain"), APP, log={"access": True})
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- forwarded_allow_ips ---------------------------------------------------------------------

def test_x_forwarded_from_trusted_peer(plain):
    env = environ_of(plain, headers={
        "X-Forwarded-For": "6.6.6.6, 198.51.100.7",  # the client made up the first one
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "shop.example.com",
        "X-Forwarded-Port": "8443",
    })
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example.com"
    assert env["SERVER_PORT"] == "8443"
    # The proxy's port is no port of the client's: none is given, so there is no REMOTE_PORT.
    assert "REMOTE_PORT" not in env
    # The headers themselves still reach the app.
    assert env["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 198.51.100.7"
    # The access log names the client, not the proxy.
    assert_logged(plain, '198.51.100.7 "GET /environ"')


def test_static_file_logs_the_client(server_factory, tmp_path):
    """[static] answers without an environ: its access line names the client all the same."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("static\n")
    server = server_factory(APP, log={"access": True},
                            static={"map": {"/static/": str(tmp_path / "files")}})
    status, _, body = server.request("GET", "/static/a.txt",
                                     headers={"X-Forwarded-For": "198.51.100.77"})
    assert (status, body) == (200, b"static\n")
    assert_logged(server, '198.51.100.77 "GET /static/a.txt"')


def test_trusted_hops_are_skipped(plain):
    env = environ_of(plain, headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1, ::1"})
    assert env["REMOTE_ADDR"] == "203.0.113.9"


def test_remote_port_is_the_clients(plain):
    """REMOTE_PORT comes with REMOTE_ADDR from the client's node, never from the proxy."""
    env = environ_of(plain, headers={"X-Forwarded-For": "203.0.113.9:4711, 127.0.0.1:80"})
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "4711")
    env = environ_of(plain, headers={"X-Forwarded-For": "[2001:db8::5]:61000"})
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::5", "61000")
    env = environ_of(plain, headers={"Forwarded": 'for="1.2.3.4:_obfuscated"'})
    assert env["REMOTE_ADDR"] == "1.2.3.4" and "REMOTE_PORT" not in env
    env = environ_of(plain)  # no header: the peer's own address and port
    assert env["REMOTE_ADDR"] == "127.0.0.1" and 0 < int(env["REMOTE_PORT"]) < 65536


def test_rfc7239_forwarded(plain):
    env = environ_of(plain, headers={
        "Forwarded": 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https;host=app.example.org'})
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "app.example.org"


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-For": "unknown"},
    {"X-Forwarded-For": "not an address, at all"},
    {"X-Forwarded-For": ","},
    {"X-Forwarded-Proto": "gopher"},
    {"X-Forwarded-Host": "a b"},
    {"X-Forwarded-Port": "99999"},
    {"X-Forwarded-Port": "-1"},
    {"Forwarded": "for"},
    {"Forwarded": 'for="'},
    {"Forwarded": "for=_hidden;proto=nope"},
    {"X-Forwarded-Prefix": "no-slash"},
    {"X-Script-Name": "/a b"},
])
def test_malformed_values_are_ignored(plain, headers):
    env = environ_of(plain, headers=headers)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "127.0.0.1:%d" % plain.port
    assert env["SERVER_PORT"] == str(plain.port)
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"


def test_untrusted_peer_changes_nothing(plain):
    """127.0.0.2 is loopback but not in the default list: its headers are the client's own."""
    status, _, body = http_get(plain.port, "/environ", source=CLIENT, headers={
        "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "1",
        "Forwarded": "for=198.51.100.8;proto=https", "X-Forwarded-Prefix": "/evil"})
    assert status == 200
    env = json.loads(body)
    assert env["REMOTE_ADDR"] == CLIENT
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(plain.port)
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"


def test_networks_and_star(server_factory):
    """CIDR ranges and "*" in the list; an empty list trusts nobody, loopback included."""
    nets = server_factory(APP, server={"forwarded_allow_ips": ["10.0.0.0/8", "127.0.0.0/30"]})
    status, _, body = http_get(nets.port, "/environ", source=CLIENT,
                               headers={"X-Forwarded-For": "198.51.100.7"})
    assert json.loads(body)["REMOTE_ADDR"] == "198.51.100.7"
    star = server_factory(APP, server={"forwarded_allow_ips": ["*"]})
    env = environ_of(star, headers={"X-Forwarded-For": "198.51.100.7, 10.1.1.1"})
    assert env["REMOTE_ADDR"] == "198.51.100.7"  # every hop is trusted: the leftmost
    nobody = server_factory(APP, server={"forwarded_allow_ips": []})
    env = environ_of(nobody, headers={"X-Forwarded-For": "198.51.100.7",
                                      "X-Forwarded-Proto": "https"})
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_bad_network_is_a_config_error(tmp_path):
    server = Server(tmp_path, APP, server={"forwarded_allow_ips": ["10.0.0.0/33"]})
    server.port = free_port()
    server.config_path.write_text(server.config_text())
    out = subprocess.run(server.command()[:-2] + ["--check", "-c", str(server.config_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "forwarded_allow_ips" in text and "10.0.0.0/33" in text, text



def test_comma_separated_list_as_gunicorn_writes_it(server_factory, tmp_path):
    """One string "a, b" in server.toml and in --forwarded-allow-ips, as in gunicorn."""
    server = server_factory(APP, server={"forwarded_allow_ips": "10.0.0.0/8, 127.0.0.0/30"})
    status, _, body = http_get(server.port, "/environ", source=CLIENT,
                               headers={"X-Forwarded-For": "198.51.100.7"})
    assert json.loads(body)["REMOTE_ADDR"] == "198.51.100.7"
    out = subprocess.run(server.command()[:1] + [
        "--print-toml", "--http", ":%d" % free_port(), "--wsgi-file", str(APP),
        "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8", "--forwarded-allow-ips=fd00::/8"],
        capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert 'forwarded_allow_ips = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]' in out.stdout


def test_environment_variable_when_the_key_is_unset(server_factory, monkeypatch):
    """$FORWARDED_ALLOW_IPS (gunicorn's) replaces the loopback default, and says so."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 192.0.2.1")
    server = server_factory(APP)
    env = environ_of(server, headers={"X-Forwarded-For": "198.51.100.7"})
    assert env["REMOTE_ADDR"] == "127.0.0.1"  # loopback is no longer trusted
    assert "FORWARDED_ALLOW_IPS=10.0.0.0/8, 192.0.2.1" in server.wait_log("FORWARDED_ALLOW_IPS")
    set_in_file = server_factory(APP, server={"forwarded_allow_ips": ["127.0.0.1"]})
    env = environ_of(set_in_file, headers={"X-Forwarded-For": "198.51.100.7"})
    assert env["REMOTE_ADDR"] == "198.51.100.7"  # the key wins over the variable


# ---- [app] mount and SCRIPT_NAME -------------------------------------------------------------

def check_mounted(server):
    env = environ_of(server, "/app/environ?x=1")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/app", "/environ",
                                                                           "x=1")
    assert env["REQUEST_URI"] == "/app/environ?x=1"
    status, _, body = server.request("GET", "/app/")
    assert (status, body) == (200, b"Hello World")
    for outside in ("/", "/environ", "/apple", "/ap", "/other/app/environ"):
        status, _, _ = server.request("GET", outside)
        assert status == 404, outside
    # Percent-escapes are decoded before the prefix is matched, as for PATH_INFO.
    env = environ_of(server, "/%61pp/environ")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/environ")
    server.assert_healthy()


def test_mount(server_factory):
    uwsgi_port = free_port()
    server = server_factory(APP, app_options={"mount": "/app/"}, ready_path="/app/",
                            server={"uwsgi_listen": ["127.0.0.1:%d" % uwsgi_port]})
    check_mounted(server)
    # A request pipelined behind one for the app takes the same path as a connection's first
    # one: outside the mount it is a 404, not a request for the app.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(b"GET /app/ HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 404 Not Found\r\n" in data, data
    # uwsgi listeners: the web server's PATH_INFO loses the prefix (manage-script-name).
    env = uwsgi_request(uwsgi_port, b"/app/environ")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/environ")


def test_script_name_from_app_env(server_factory):
    """gunicorn's rule: SCRIPT_NAME in the environment mounts the app there."""
    check_mounted(server_factory(APP, env={"SCRIPT_NAME": "/app"}, ready_path="/app/"))


def test_prefix_from_trusted_proxy(plain, server_factory):
    # The proxy stripped the prefix (nginx proxy_pass http://up/;): PATH_INFO stays.
    env = environ_of(plain, "/environ", headers={"X-Forwarded-Prefix": "/shop/"})
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/shop", "/environ")
    # It did not: the prefix comes off PATH_INFO.
    env = environ_of(plain, "/shop/environ", headers={"X-Script-Name": "/shop"})
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/shop", "/environ")
    # A trusted proxy's prefix replaces the mount, and is no 404.
    mounted = server_factory(APP, app_options={"mount": "/app"}, ready_path="/app/")
    env = environ_of(mounted, "/environ", headers={"X-Forwarded-Prefix": "/shop"})
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/shop", "/environ")
    status, _, _ = http_get(mounted.port, "/environ", source=CLIENT,
                            headers={"X-Forwarded-Prefix": "/shop"})
    assert status == 404


# ---- PROXY protocol --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pp(tmp_path_factory):
    """proxy_protocol on an HTTP and a uwsgi listener; 127.0.0.1 is the only trusted peer."""
    uwsgi_port = free_port()
    server = ProxyProtocolServer(tmp_path_factory.mktemp("pp"), APP, log={"access": True},
                                 server={"proxy_protocol": True,
                                         "forwarded_allow_ips": ["127.0.0.1"],
                                         "uwsgi_listen": ["127.0.0.1:%d" % uwsgi_port]})
    server.uwsgi_port = uwsgi_port
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pp_environ(server, prefix, headers=None, source=None):
    got = http_get(server.port, "/environ", headers=headers, source=source, prefix=prefix)
    assert got is not None and got[0] == 200, (got, server.log_text()[-2000:])
    return json.loads(got[2])


@pytest.mark.parametrize("header", [v1("203.0.113.5", 4711), v2("203.0.113.5", 4711)],
                         ids=["v1", "v2"])
def test_proxy_header_sets_the_peer(pp, header):
    env = pp_environ(pp, header)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.5", "4711")
    assert_logged(pp, '203.0.113.5 "GET /environ"')


def test_proxy_header_v1_ipv6(pp):
    assert pp_environ(pp, v1("2001:db8::5"))["REMOTE_ADDR"] == "2001:db8::5"


def test_proxy_header_local_keeps_the_peer(pp):
    env = pp_environ(pp, v2(local=True))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_header_then_keep_alive(pp):
    """The header comes once per connection; the requests after it keep its address."""
    with socket.create_connection(("127.0.0.1", pp.port), timeout=10) as sock:
        sock.sendall(v1("198.51.100.1") + b"GET /environ HTTP/1.1\r\nHost: h\r\n\r\n"
                     b"GET /environ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.count(b'"REMOTE_ADDR": "198.51.100.1"') == 2


@pytest.mark.parametrize("prefix", [
    b"",                                             # no header: a plain request
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",       # port out of range
    b"PROXY TCP4 ::1 ::1 1 2\r\n",                   # family mismatch
    b"PROXY SOMETHING\r\n",
    V2_SIG[:11] + b"X" + b"\x21\x11\x00\x0c" + bytes(12),
    V2_SIG + b"\x21\x11\x00\x04" + bytes(4),         # IPv4 block too short
], ids=["missing", "v1-port", "v1-family", "v1-proto", "v2-signature", "v2-short"])
def test_bad_proxy_header_closes(pp, prefix):
    assert http_get(pp.port, "/environ", prefix=prefix) is None
    pp.assert_healthy()


def test_proxy_header_from_untrusted_peer_closes(pp):
    assert http_get(pp.port, "/environ", source=CLIENT, prefix=v1("203.0.113.5")) is None
    pp.assert_healthy()


def uwsgi_request(port, path, prefix=b""):
    """A uwsgi-protocol GET (as nginx's uwsgi_pass sends it): the environ the app saw."""
    def var(k, v):
        return struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    block = b"".join(var(k, v) for k, v in [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", path),
                                             (b"SERVER_NAME", b"h"), (b"SERVER_PORT", b"80"),
                                             (b"SERVER_PROTOCOL", b"HTTP/1.1")])
    packet = b"\x00" + struct.pack("<H", len(block)) + b"\x00" + block
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(prefix + packet)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b" 200 " in data.split(b"\r\n", 1)[0], data[:300]
    return json.loads(data.partition(b"\r\n\r\n")[2])


def test_proxy_header_on_uwsgi_listener(pp):
    env = uwsgi_request(pp.uwsgi_port, b"/environ", prefix=v2("198.51.100.9"))
    assert env["REMOTE_ADDR"] == "198.51.100.9"
    packet = b"\x00\x05\x00\x00" + b"\x00" * 5  # a uwsgi packet without the PROXY header
    with socket.create_connection(("127.0.0.1", pp.uwsgi_port), timeout=10) as sock:
        sock.sendall(packet)
        assert sock.recv(65536) == b""


# ---- the real proxies ------------------------------------------------------------------------

HAPROXY_CFG = """
global
    maxconn 100
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tcp_in
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend aiowsgi_proxy_v2
backend aiowsgi_proxy_v2
    mode tcp
    server pp 127.0.0.1:{pp_port} send-proxy-v2
frontend http_in
    mode http
    bind 127.0.0.1:{http_port}
    option forwardfor
    default_backend aiowsgi_http
backend aiowsgi_http
    mode http
    server plain 127.0.0.1:{plain_port}
"""


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory, pp, plain):
    exe = require_tool("haproxy", shutil.which("haproxy") or "/usr/sbin/haproxy")
    d = tmp_path_factory.mktemp("haproxy")
    ports = {"tcp_port": free_port(), "http_port": free_port()}
    (d / "haproxy.cfg").write_text(HAPROXY_CFG.format(pp_port=pp.port, plain_port=plain.port,
                                                      **ports))
    check = subprocess.run([exe, "-c", "-f", str(d / "haproxy.cfg")], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(d / "haproxy.log", "wb")
    proc = subprocess.Popen([exe, "-db", "-f", str(d / "haproxy.cfg")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for port in ports.values():
            def listening(port=port):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    assert proc.poll() is None, (d / "haproxy.log").read_text()
                    return False
            wait_for(listening, timeout=10)
        yield ports
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_haproxy_send_proxy_v2(haproxy, pp):
    got = http_get(haproxy["tcp_port"], "/environ", source=CLIENT)
    assert got is not None and got[0] == 200, (got, pp.log_text()[-2000:])
    assert json.loads(got[2])["REMOTE_ADDR"] == CLIENT
    assert_logged(pp, '%s "GET /environ"' % CLIENT)


def test_haproxy_option_forwardfor(haproxy, plain):
    got = http_get(haproxy["http_port"], "/environ", source=CLIENT)
    assert got is not None and got[0] == 200, got
    env = json.loads(got[2])
    assert env["HTTP_X_FORWARDED_FOR"] == CLIENT
    assert env["REMOTE_ADDR"] == CLIENT


NGINX_SITE = """
upstream aiowsgi_up {
    server 127.0.0.1:8000;
    keepalive 8;
}
server {
    listen 80;
    location / {
        proxy_pass http://aiowsgi_up;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # As behind a TLS terminator: the client spoke https to the edge.
        proxy_set_header X-Forwarded-Proto https;
    }
    location /shop/ {
        proxy_pass http://aiowsgi_up/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Prefix /shop;
    }
}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, plain):
    require_tool("nginx", shutil.which("nginx") or "/usr/sbin/nginx")
    d = tmp_path_factory.mktemp("nginx")
    site = d / "forwarding.conf"
    site.write_text(NGINX_SITE)
    proxy = Nginx(d / "prefix", [(str(site), {"127.0.0.1:8000": "127.0.0.1:%d" % plain.port})])
    try:
        proxy.start()
        yield proxy.ports[str(site)]
    finally:
        proxy.stop()


def test_nginx_forwarded_for_and_proto(nginx, plain):
    # Two clients on one upstream keep-alive connection: each request gets its own client.
    for source in (CLIENT, "127.0.0.3", CLIENT):
        got = http_get(nginx, "/environ", source=source)
        assert got is not None and got[0] == 200, got
        env = json.loads(got[2])
        assert env["REMOTE_ADDR"] == source
        assert env["wsgi.url_scheme"] == "https"
        assert env["HTTP_HOST"] == "127.0.0.1"
    assert_logged(plain, '127.0.0.3 "GET /environ"')
    # A client's own X-Forwarded-For is kept left of what nginx appends: not believed.
    got = http_get(nginx, "/environ", source=CLIENT, headers={"X-Forwarded-For": "6.6.6.6"})
    assert json.loads(got[2])["REMOTE_ADDR"] == CLIENT


def test_nginx_prefix(nginx):
    got = http_get(nginx, "/shop/environ", source=CLIENT)
    assert got is not None and got[0] == 200, got
    env = json.loads(got[2])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/shop", "/environ")
    assert env["wsgi.url_scheme"] == "http"
    assert env["REMOTE_ADDR"] == CLIENT


# ---- Django under a prefix -------------------------------------------------------------------

DJANGO = APPS / "django_prefix" / "wsgi.py"


@pytest.mark.parametrize("how", ["mount", "SCRIPT_NAME"])
def test_django_under_mount(server_factory, how):
    options = {"app_options": {"mount": "/app"}} if how == "mount" else {
        "env": {"SCRIPT_NAME": "/app"}}
    site = server_factory(DJANGO, ready_path="/app/", **options)
    status, _, body = site.request("GET", "/app/where/")
    assert status == 200, site.log_text()[-3000:]
    info = json.loads(body)
    assert info["reverse"] == "/app/where/"
    assert info["static"] == "/app/static/app.css"
    assert info["absolute"] == "http://127.0.0.1:%d/app/where/" % site.port
    status, headers, _ = site.request("GET", "/app/go/")
    assert (status, headers["location"]) == (302, "/app/where/")
    # The admin sends an anonymous user to its login page, under the prefix; the page's
    # stylesheets and form are under it too.
    status, headers, _ = site.request("GET", "/app/admin/")
    assert status == 302
    assert headers["location"] == "/app/admin/login/?next=/app/admin/"
    status, _, page = site.request("GET", "/app/admin/login/?next=/app/admin/")
    assert status == 200, page[:2000]
    assert b'href="/app/static/admin/css/base.css"' in page
    assert b'action="/app/admin/login/?next=/app/admin/"' in page
    assert site.request("GET", "/where/")[0] == 404


def test_django_behind_a_proxy_with_prefix(tmp_path_factory):
    """A proxy that strips /shop and says so in X-Forwarded-Prefix: Django's URLs carry it,
    and its absolute URLs the client's scheme and host."""
    site = Server(tmp_path_factory.mktemp("django"), DJANGO)
    site.start()
    try:
        status, _, body = site.request("GET", "/where/", headers={
            "X-Forwarded-Prefix": "/shop", "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example.com", "X-Forwarded-For": "198.51.100.7"})
        assert status == 200, site.log_text()[-3000:]
        info = json.loads(body)
        assert info["reverse"] == "/shop/where/"
        assert info["static"] == "/shop/static/app.css"
        assert info["absolute"] == "https://shop.example.com/shop/where/"
        assert info["secure"] is True
        status, headers, _ = site.request("GET", "/admin/", headers={
            "X-Forwarded-Prefix": "/shop"})
        assert headers["location"] == "/shop/admin/login/?next=/shop/admin/"
    finally:
        site.stop()
