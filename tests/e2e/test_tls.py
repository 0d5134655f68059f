"""HTTPS listeners ([server] listen = ["https://..."], [tls]): the handshake and records on the
worker's loop, keep-alive and pipelining through TLS, client certificates in the environ,
hostile clients (garbage, a stalled handshake, TLS 1.1) costing only their own connection,
--check refusing a key that does not match, and HUP serving a renewed certificate.

Certificates are made at test time with the openssl command (a CA, a server and a client
certificate under tmp_path); the module is skipped without it.
"""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import APPS, Server, find_master, require_tool, toml_value

APP = str(APPS / "tls_app.py")
UVLOOP = True  # TLS waits go through the loop's readers and writers: both loops


def openssl(*args, cwd):
    subprocess.run([require_tool("openssl"), *args], cwd=str(cwd), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_cert(d, name, cn, ca="ca", server=True):
    """An EC key and a certificate for `cn` signed by the CA `ca` in folder d."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s/O=aiowsgi tests" % cn,
            cwd=d)
    ext = d / (name + ".ext")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else
                   "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "30", "-out", name + ".pem", "-extfile", str(ext), cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=aiowsgi test CA",
            cwd=d)
    make_cert(d, "server", "localhost")
    make_cert(d, "client", "alice", server=False)
    make_cert(d, "other", "other-key")  # its key matches no other certificate
    return d


def client_context(certs, client=True):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return ctx


class TlsServer(Server):
    """A Server whose listener is https:// with [tls] from `certs` (and ca with `mtls`)."""

    def __init__(self, workdir, app, *, certs, mtls=False, tls=None, **kwargs):
        super().__init__(workdir, app, **kwargs)
        self.certs, self.mtls = certs, mtls
        self.tls_extra = dict(tls or {})  # more [tls] keys
        self.ssl_context = client_context(certs, client=mtls)
        ctx = self.ssl_context
        self.connection_class = lambda host, port, timeout=10: http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ctx)

    def config_text(self):
        text = super().config_text().replace('"127.0.0.1:%d"' % self.port,
                                             '"https://127.0.0.1:%d"' % self.port, 1)
        tls = ["[tls]", 'certificate = "%s"' % (self.certs / "server.pem"),
               'key = "%s"' % (self.certs / "server.key")]
        if self.mtls:
            tls.append('ca = "%s"' % (self.certs / "ca.pem"))
        tls.extend("%s = %s" % (k, toml_value(v)) for k, v in self.tls_extra.items())
        return text + "\n" + "\n".join(tls) + "\n"

    def tls_socket(self, timeout=10):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.ssl_context.wrap_socket(raw, server_hostname="localhost")


def start(tmp_path_factory, certs, **kwargs):
    s = TlsServer(tmp_path_factory.mktemp("tls"), APP, certs=certs,
                  limits={"header_timeout": 1}, **kwargs)
    s.factory_owned = True
    return s.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory, certs):
    static = tmp_path_factory.mktemp("static")
    (static / "big.bin").write_bytes(b"0123456789abcdef" * 20000)
    s = start(tmp_path_factory, certs, static={"map": {"/static/": str(static)}})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, certs):
    s = start(tmp_path_factory, certs, mtls=True)
    yield s
    s.stop()


def read_responses(sock, count, deadline=10):
    """Reads until `count` complete responses with Content-Length bodies have arrived."""
    data = b""
    end = time.monotonic() + deadline
    bodies = []
    while len(bodies) < count and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")][0]
            if len(rest) < length:
                break
            bodies.append((head.split(b"\r\n")[0], rest[:length]))
            data = rest[length:]
    return bodies


def test_get_and_environ(server):
    status, headers, body = server.request("GET", "/")
    assert (status, body) == (200, b"ok")
    status, _, body = server.request("GET", "/environ")
    env = json.loads(body)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SSL_CLIENT_S_DN"] is None  # no [tls] ca: no client certificate asked for


def test_big_response_spans_many_records(server):
    status, _, body = server.request("GET", "/big")
    assert status == 200
    assert body == b"0123456789abcdef" * 16384


def test_file_bodies_are_encrypted_records(server):
    # Over TLS, sendfile(2) gives way to reading the file and writing records.
    status, _, body = server.request("GET", "/static/big.bin")
    assert (status, body) == (200, b"0123456789abcdef" * 20000)
    status, _, body = server.request("GET", "/file")
    assert (status, body) == (200, b"0123456789abcdef" * 16384)


def test_post_chunked_body(server):
    conn = server.connection_class("127.0.0.1", server.port)
    try:
        parts = [b"hello ", b"over ", b"tls" * 10000]
        conn.request("POST", "/echo", body=iter(parts), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"".join(parts)
    finally:
        conn.close()


def test_keep_alive_two_requests_one_connection(server):
    conn = server.connection_class("127.0.0.1", server.port)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.read() == b"ok"
        sock = conn.sock
        conn.request("GET", "/environ")
        resp = conn.getresponse()
        assert json.loads(resp.read())["wsgi.url_scheme"] == "https"
        assert conn.sock is sock  # the same TLS session served both
    finally:
        conn.close()


def test_pipelined_requests_in_one_write(server):
    with server.tls_socket() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /environ HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_responses(s, 2)
    assert [line for line, _ in got] == [b"HTTP/1.1 200 OK"] * 2
    assert got[0][1] == b"ok"
    assert json.loads(got[1][1])["HTTPS"] == "on"


def test_pipelined_requests_each_in_its_own_record(server):
    # The worker takes one record per read once OpenSSL holds nothing more: the records still
    # in the socket must each be read on when its readiness says so, heads and a body alike.
    body = b"0123456789abcdef" * 32768  # 512 KiB: many records
    with server.tls_socket() as s:
        for _ in range(20):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # one record each
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 16384):
            s.sendall(body[i:i + 16384])
        got = read_responses(s, 21)
    assert [b for _, b in got[:20]] == [b"ok"] * 20
    assert len(got) == 21 and got[20][1] == body


def test_curl(server):
    curl = require_tool("curl")
    out = subprocess.run([curl, "-sS", "--cacert", str(server.certs / "ca.pem"),
                          "https://localhost:%d/environ" % server.port],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["wsgi.url_scheme"] == "https"


def test_alpn_http11(server):
    ctx = client_context(server.certs, client=False)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_garbage_closes_that_connection_only(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as bad:
        bad.sendall(b"GET / HTTP/1.1\r\nHost: plain-http-on-a-tls-port\r\n\r\n")
        try:
            rest = bad.recv(4096)
            while rest and b"HTTP/1.1" not in rest:  # a TLS alert may come first
                rest = bad.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert b"HTTP/1.1 200" not in rest
    server.assert_healthy()


def test_stalled_handshake_closed_after_header_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        # Others are served while it says nothing: the handshake holds no core.
        for _ in range(3):
            server.assert_healthy()
        start = time.monotonic()
        try:
            got = idle.recv(1)
        except ConnectionResetError:
            got = b""
        assert got == b""
        assert time.monotonic() - start < 8  # header_timeout = 1 s, a tick, a busy machine


def test_tls_1_1_refused(server):
    openssl_bin = require_tool("openssl")
    out = subprocess.run([openssl_bin, "s_client", "-connect", "127.0.0.1:%d" % server.port,
                          "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                         input=b"", capture_output=True, timeout=30)
    assert out.returncode != 0
    # The server answered the TLS 1.1 ClientHello with a protocol_version alert.
    assert b"alert protocol version" in out.stderr, out.stderr
    assert b"Cipher is (NONE)" in out.stdout
    server.assert_healthy()


def test_client_certificate_in_environ(mtls_server):
    status, _, body = mtls_server.request("GET", "/environ")
    env = json.loads(body)
    assert status == 200
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert "CN=alice" in env["SSL_CLIENT_S_DN"]
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")


def test_no_client_certificate_refused(mtls_server):
    ctx = client_context(mtls_server.certs, client=False)
    conn = http.client.HTTPSConnection("127.0.0.1", mtls_server.port, timeout=10, context=ctx)
    # TLS 1.3: the client's handshake ends before the server judges it; the refusal comes
    # as an alert on the first read.
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        conn.request("GET", "/environ")
        conn.getresponse().read()
    conn.close()
    assert mtls_server.request("GET", "/")[0] == 200


def test_check_refuses_mismatched_key(tmp_path, certs):
    cfg = tmp_path / "server.toml"
    cfg.write_text('[server]\nlisten = ["https://127.0.0.1:0"]\n[app]\nwsgi_file = "%s"\n'
                   '[tls]\ncertificate = "%s"\nkey = "%s"\n'
                   % (APP, certs / "server.pem", certs / "other.key"))
    out = subprocess.run([find_master(), "--check", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "does not match" in out.stdout + out.stderr


def test_check_needs_certificate_for_https(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text('[server]\nlisten = ["https://127.0.0.1:0"]\n[app]\nwsgi_file = "%s"\n' % APP)
    out = subprocess.run([find_master(), "--check", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "needs [tls] certificate and key" in out.stdout + out.stderr


def served_cert(server):
    with server.tls_socket() as s:
        return s.getpeercert(binary_form=True)


def test_hup_serves_renewed_certificate(tmp_path, certs):
    d = tmp_path / "certs"
    d.mkdir()
    for name in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"):
        (d / name).write_bytes((certs / name).read_bytes())
    s = TlsServer(tmp_path / "run", APP, certs=d)
    (tmp_path / "run").mkdir()
    s.start()
    before = served_cert(s)
    assert before == ssl.PEM_cert_to_DER_cert((d / "server.pem").read_text())
    # A key that does not match: the master's check refuses the reload before any new
    # worker forks, and the running ones keep serving the old certificate.
    good_key = (d / "server.key").read_bytes()
    (d / "server.key").write_bytes((certs / "other.key").read_bytes())
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "does not match certificate" not in s.log_text():
        assert time.monotonic() < deadline, "the bad key was not reported"
        time.sleep(0.2)
    assert served_cert(s) == before
    (d / "server.key").write_bytes(good_key)
    make_cert(d, "server", "renewed.localhost")
    renewed = ssl.PEM_cert_to_DER_cert((d / "server.pem").read_text())
    assert renewed != before
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 20
    while served_cert(s) != renewed:
        assert time.monotonic() < deadline, "the old certificate is still served after HUP"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory, certs):
    s = TlsServer(tmp_path_factory.mktemp("tls_ws"), str(APPS / "uwsgi_app.py"), certs=certs)
    s.factory_owned = True
    s.start()
    yield s
    s.stop()


def test_websocket_over_tls(ws_server):
    import asyncio

    import websockets

    async def scenario():
        url = "wss://localhost:%d/ws/echo" % ws_server.port
        async with websockets.connect(url, ssl=ws_server.ssl_context, max_size=None) as ws:
            await ws.send("plain")
            assert await ws.recv() == "plain"
            await ws.send("__big__")  # 200 KB back: many records, writes that wait
            assert await ws.recv() == b"z" * 200000
        assert ws.close_code == 1000

    asyncio.run(asyncio.wait_for(scenario(), 20))
