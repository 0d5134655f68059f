"""HTTPS in production shape: session resumption on every worker (ticket keys the workers share
and rotate), the protocol policy as openssl s_client sees it (no TLS 1.0/1.1, no weak cipher,
no compression, no client-initiated renegotiation), 1,000 half-open handshakes, a HUP with a
renewed certificate under load, and uWSGI's https option in an --ini file.

Certificates come from test_tls.py's fixture (made with the openssl command at test time).
"""
import os
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import APPS, find_master, require_tool
from test_tls import APP, TlsServer, certs, client_context, make_cert, served_cert  # noqa: F401


def worker_pids(server):
    return {p for p in server.group_pids() if p != server.pid}


def resumed_pid(server, session):
    """One request on a new connection offering `session`: (reused?, worker pid, new session)."""
    ctx = server.ssl_context
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        # TLS 1.3 tickets arrive after the handshake: read to the end before taking it.
        return s.session_reused, int(data.split(b"\r\n\r\n", 1)[1]), s.session


@pytest.fixture(scope="module")
def workers3(tmp_path_factory, certs):  # noqa: F811
    s = TlsServer(tmp_path_factory.mktemp("tls3"), APP, certs=certs, workers=3)
    s.factory_owned = True
    s.start()
    yield s
    s.stop()


def test_session_resumes_on_every_worker(workers3):
    reused, first_pid, session = resumed_pid(workers3, None)
    assert not reused
    pids = {first_pid}
    results = []
    for _ in range(30):
        reused, pid, _ = resumed_pid(workers3, session)
        results.append(reused)
        pids.add(pid)
        if len(pids) == 3 and len(results) >= 6:
            break
    assert all(results), results
    # Connections spread over the workers: a ticket one issued was taken by the others.
    assert len(pids) >= 2, pids


def test_session_resumes_after_hup(workers3):
    _, _, session = resumed_pid(workers3, None)
    old = worker_pids(workers3)
    os.kill(workers3.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while worker_pids(workers3) & old or len(worker_pids(workers3)) < 3:
        assert time.monotonic() < deadline, "the reload did not replace the workers"
        time.sleep(0.2)
    reused, pid, _ = resumed_pid(workers3, session)
    assert reused and pid not in old


def test_ticket_key_rotation_retires_old_tickets(tmp_path, certs):  # noqa: F811
    s = TlsServer(tmp_path, APP, certs=certs, tls={"ticket_key_rotation": 1, "kernel_tls": False})
    s.start()
    try:
        assert ("[tls] static files over TLS: buffered writes, not kTLS ([tls] kernel_tls = false)"
                in s.log_text())
        _, _, session = resumed_pid(s, None)
        reused, _, _ = resumed_pid(s, session)
        assert reused  # the same or the next one-second period: accepted
        time.sleep(3.5)  # two periods later the key that made it is gone
        reused, _, fresh = resumed_pid(s, session)
        assert not reused
        assert resumed_pid(s, fresh)[0]
    finally:
        s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, certs):  # noqa: F811
    s = TlsServer(tmp_path_factory.mktemp("tls_policy"), APP, certs=certs,
                  limits={"header_timeout": 2, "max_connections": 3000})
    s.factory_owned = True
    s.start()
    yield s
    s.stop()


def s_client(server, *args, stdin=b""):
    return subprocess.run([require_tool("openssl"), "s_client", "-connect",
                           "127.0.0.1:%d" % server.port, "-servername", "localhost", *args],
                          input=stdin, capture_output=True, timeout=30)


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_protocols_refused(server, version):
    out = s_client(server, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert out.returncode != 0
    assert b"Cipher is (NONE)" in out.stdout
    server.assert_healthy()


@pytest.mark.parametrize("cipher", [
    "AES128-SHA:AES256-SHA:AES128-GCM-SHA256",   # static RSA key exchange
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA",  # CBC with SHA-1
    "DES-CBC3-SHA:RC4-SHA:NULL-SHA:ECDHE-ECDSA-NULL-SHA:aNULL",
])
def test_weak_tls12_ciphers_refused(server, cipher):
    out = s_client(server, "-tls1_2", "-cipher", cipher + "@SECLEVEL=0")
    assert out.returncode != 0, out.stdout
    assert b"Cipher is (NONE)" in out.stdout


def test_start_up_log_says_how_static_files_go(server):
    line = [ln for ln in server.log_text().splitlines() if "[tls] static files over TLS: " in ln]
    assert len(line) == 1, server.log_text()
    assert "kernel TLS (kTLS) with sendfile" in line[0] or "buffered writes, not kTLS (" in line[0]


def test_tls12_and_13_without_compression(server):
    for version, proto in (("-tls1_2", b"TLSv1.2"), ("-tls1_3", b"TLSv1.3")):
        out = s_client(server, version)
        assert out.returncode == 0, out.stderr
        assert b"Protocol  : " + proto in out.stdout or proto in out.stdout
        assert b"Compression: NONE" in out.stdout


def test_client_renegotiation_refused(server):
    # s_client's "R" asks for a renegotiation (TLS 1.2); the server answers with the
    # no_renegotiation alert, which ends s_client's session.
    out = s_client(server, "-tls1_2", stdin=b"R\n")
    text = out.stdout + out.stderr
    assert b"RENEGOTIATING" in text
    assert b"no renegotiation" in text, text[-2000:]
    server.assert_healthy()


def test_thousand_half_open_handshakes(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("needs 1,200 open files; the hard limit is %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a ClientHello's first bytes
    stalled = []
    try:
        for i in range(1000):
            c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:
                c.sendall(hello)  # half the handshakes stop inside the first record
            stalled.append(c)
        # The worker goes on serving while all of them wait.
        t0 = time.monotonic()
        for _ in range(5):
            server.assert_healthy()
        assert time.monotonic() - t0 < 10
        # header_timeout (2 s) closes them all; generous bound for a loaded machine.
        deadline = time.monotonic() + 30
        for c in stalled:
            c.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                assert c.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for c in stalled:
            c.close()
    server.assert_healthy()


def test_hup_with_renewed_certificate_loses_no_request(tmp_path, certs):  # noqa: F811
    d = tmp_path / "certs"
    d.mkdir()
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        (d / name).write_bytes((certs / name).read_bytes())
    (tmp_path / "run").mkdir()
    s = TlsServer(tmp_path / "run", APP, certs=d, workers=2)
    s.start()
    stop = threading.Event()
    counts = {"ok": 0, "failed": [], "certs": set()}
    ctx = client_context(d, client=False)

    def load():
        while not stop.is_set():
            try:
                raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                with ctx.wrap_socket(raw, server_hostname="localhost") as c:
                    counts["certs"].add(c.getpeercert(binary_form=True))
                    for _ in range(3):  # keep-alive requests as well as new connections
                        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        data = b""
                        while not data.endswith(b"ok"):
                            chunk = c.recv(4096)
                            assert chunk, "closed mid-response"
                            data += chunk
                        assert data.startswith(b"HTTP/1.1 200")
                        counts["ok"] += 1
                        if b"Connection: close" in data:
                            break  # a draining worker's last answer on this connection
            except Exception as e:  # counted: the assertion below names them
                counts["failed"].append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        make_cert(d, "server", "renewed.localhost")
        renewed = ssl.PEM_cert_to_DER_cert((d / "server.pem").read_text())
        os.kill(s.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while renewed not in counts["certs"]:
            assert time.monotonic() < deadline, "the renewed certificate was never served"
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        s.stop()
    assert counts["failed"] == [], counts["failed"][:5]
    assert counts["ok"] > 50
    assert len(counts["certs"]) == 2


def test_uwsgi_ini_https_option(tmp_path, certs):  # noqa: F811
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nmaster = true\nwsgi-file = %s\nhttps = 127.0.0.1:%d,%s,%s,HIGH\n"
                   % (APP, port, certs / "server.pem", certs / "server.key"))
    proc = subprocess.Popen([find_master(), "--ini", str(ini)], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ctx = client_context(certs, client=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            c.sendall(b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert b'"HTTPS": "on"' in data and b'"wsgi.url_scheme": "https"' in data
    finally:
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=30)[0].decode()
    assert "its cipher list HIGH is not used" in log, log
