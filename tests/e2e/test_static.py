"""[static] map: files answered by the worker without a core and without Python.

One server (1 worker, 1 core) maps /static/ to a folder built here; the app is
tests/apps/http_app.py (its /sleep?t=N suspends the only core). Headers, conditionals,
ranges, HEAD, precompressed .gz, traversal attempts, a 1 GiB sparse file with small requests
alongside, a static request while the core is busy, the uwsgi protocol.
"""
import concurrent.futures
import email.utils
import gzip
import os
import socket
import threading
import time

import pytest

from conftest import APPS, free_port
from wire_clients import uwsgi_exchange

APP = APPS / "http_app.py"
BIG = 1 << 30  # the sparse file


def make_site(root):
    site = root / "site"
    (site / "css").mkdir(parents=True)
    (site / "sub").mkdir()
    (site / "style.css").write_bytes(b"body { color: red }\n")
    (site / "data.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    (site / "page.html").write_bytes(b"<p>plain</p>\n" * 50)
    (site / "page.html.gz").write_bytes(gzip.compress(b"<p>plain</p>\n" * 50))
    (site / "noext").write_bytes(b"x")
    (site / "css" / "a b.css").write_bytes(b"spaced")
    (site / "empty.txt").write_bytes(b"")
    (site / "sub" / "index.html").write_bytes(b"index")
    with open(site / "big.bin", "wb") as f:
        f.truncate(BIG)
    secret = root / "secret.txt"
    secret.write_bytes(b"SECRET")
    os.symlink(secret, site / "out-link")
    os.symlink("../secret.txt", site / "out-rel-link")
    (site / "gz-dir.txt").write_bytes(b"not compressed")
    (site / "gz-dir.txt.gz").mkdir()  # a .gz sibling that is not a regular file: ignored
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def uwsgi_port():
    return free_port()


@pytest.fixture(scope="module")
def server(server_factory, site, uwsgi_port):
    return server_factory(APP, workers=1, cores=1, stats_socket=True,
                          server={"uwsgi_listen": ["127.0.0.1:%d" % uwsgi_port]},
                          static={"map": {"/static/": str(site)}, "expires": 3600,
                                  "expires_uri": [r"^/static/data\.bin$ 60"],
                                  "expires_type": ["text/html 0"]})


def get(server, path, headers=(), method="GET"):
    with server.connect() as c:
        return c.request(method, path, headers=list(headers))


def worker_pids(server):
    return sorted(p for p in server.group_pids() if p != server.pid)


# ---- headers ---------------------------------------------------------------------------------

def test_file_headers(server, site):
    r = get(server, "/static/style.css")
    assert r.status == 200
    assert r.body == b"body { color: red }\n"
    assert r.header("content-type") == "text/css"
    assert r.header("content-length") == str(len(r.body))
    st = os.stat(site / "style.css")
    assert r.header("last-modified") == email.utils.formatdate(int(st.st_mtime), usegmt=True)
    etag = r.header("etag")
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith('W/')
    assert r.header("cache-control") == "max-age=3600"
    assert r.header("accept-ranges") == "bytes"
    assert r.header("vary") is None  # no style.css.gz
    assert r.header("date") is not None


def test_content_types(server):
    assert get(server, "/static/page.html").header("content-type") == "text/html"
    assert get(server, "/static/data.bin").header("content-type") == "application/octet-stream"
    assert get(server, "/static/noext").header("content-type") == "application/octet-stream"


def test_etag_changes_with_the_file(server, site):
    p = site / "changing.txt"
    p.write_bytes(b"one")
    first = get(server, "/static/changing.txt").header("etag")
    p.write_bytes(b"two!")
    r = get(server, "/static/changing.txt")
    assert r.body == b"two!"
    assert r.header("etag") != first


def test_percent_encoded_name_and_empty_file(server):
    assert get(server, "/static/css/a%20b.css").body == b"spaced"
    r = get(server, "/static/empty.txt")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == "0"


def test_query_string_is_ignored(server):
    r = get(server, "/static/style.css?v=123")
    assert r.status == 200 and r.body == b"body { color: red }\n"


# ---- conditionals ---------------------------------------------------------------------------

def test_if_none_match_304(server):
    etag = get(server, "/static/style.css").header("etag")
    r = get(server, "/static/style.css", [("If-None-Match", etag)])
    assert r.status == 304 and r.body == b""
    assert r.header("etag") == etag
    assert r.header("cache-control") == "max-age=3600"
    assert get(server, "/static/style.css", [("If-None-Match", '"x", W/%s' % etag)]).status == 304
    assert get(server, "/static/style.css", [("If-None-Match", "*")]).status == 304
    assert get(server, "/static/style.css", [("If-None-Match", '"other"')]).status == 200


def test_if_modified_since_304(server):
    lm = get(server, "/static/style.css").header("last-modified")
    assert get(server, "/static/style.css", [("If-Modified-Since", lm)]).status == 304
    older = email.utils.formatdate(email.utils.parsedate_to_datetime(lm).timestamp() - 10,
                                   usegmt=True)
    r = get(server, "/static/style.css", [("If-Modified-Since", older)])
    assert r.status == 200 and r.body == b"body { color: red }\n"
    assert get(server, "/static/style.css", [("If-Modified-Since", "garbage")]).status == 200


def test_if_none_match_takes_precedence(server):
    # RFC 9110 13.2.2: a non-matching If-None-Match wins over a matching If-Modified-Since.
    lm = get(server, "/static/style.css").header("last-modified")
    r = get(server, "/static/style.css", [("If-None-Match", '"nope"'), ("If-Modified-Since", lm)])
    assert r.status == 200


# ---- ranges ------------------------------------------------------------------------------------

DATA = bytes(range(256)) * 40


@pytest.mark.parametrize("spec,first,last", [("bytes=10-19", 10, 19), ("bytes=10240-", None, None),
                                             ("bytes=10000-", 10000, 10239),
                                             ("bytes=-100", 10140, 10239),
                                             ("bytes=0-999999", 0, 10239)])
def test_single_range(server, spec, first, last):
    r = get(server, "/static/data.bin", [("Range", spec)])
    if first is None:
        assert r.status == 416
        assert r.header("content-range") == "bytes */10240"
        return
    assert r.status == 206
    assert r.header("content-range") == "bytes %d-%d/10240" % (first, last)
    assert r.body == DATA[first:last + 1]
    assert r.header("content-length") == str(last - first + 1)


def test_unsatisfiable_and_ignored_ranges(server):
    assert get(server, "/static/data.bin", [("Range", "bytes=-0")]).status == 416
    r = get(server, "/static/data.bin", [("Range", "bytes=0-1,5-6")])  # multi-range: whole file
    assert r.status == 200 and r.body == DATA
    r = get(server, "/static/data.bin", [("Range", "bytes=9-3")])  # invalid: ignored
    assert r.status == 200 and r.body == DATA
    r = get(server, "/static/data.bin", [("Range", "lines=1-2")])
    assert r.status == 200


def test_if_range(server):
    etag = get(server, "/static/data.bin").header("etag")
    r = get(server, "/static/data.bin", [("Range", "bytes=0-0"), ("If-Range", etag)])
    assert r.status == 206 and r.body == DATA[:1]
    r = get(server, "/static/data.bin", [("Range", "bytes=0-0"), ("If-Range", '"stale"')])
    assert r.status == 200 and r.body == DATA


def test_head(server):
    r = get(server, "/static/data.bin", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("content-length") == "10240"
    # The connection stays usable: nothing was sent after the head.
    with server.connect() as c:
        assert c.request("HEAD", "/static/style.css").status == 200
        assert c.request("GET", "/static/style.css").body == b"body { color: red }\n"


# ---- precompressed .gz ---------------------------------------------------------------------

def test_gzip_when_accepted(server, site):
    r = get(server, "/static/page.html", [("Accept-Encoding", "br, gzip;q=0.5")])
    assert r.status == 200
    assert r.header("content-encoding") == "gzip"
    assert r.header("content-type") == "text/html"
    assert r.header("vary") == "Accept-Encoding"
    assert r.body == (site / "page.html.gz").read_bytes()
    plain = get(server, "/static/page.html")
    assert plain.header("content-encoding") is None
    assert plain.header("vary") == "Accept-Encoding"
    assert plain.body == b"<p>plain</p>\n" * 50
    assert plain.header("etag") != r.header("etag")


def test_gzip_refused_with_q0(server):
    for ae in ("gzip;q=0", "gzip;q=0.000, identity", "*;q=0", "identity"):
        r = get(server, "/static/page.html", [("Accept-Encoding", ae)])
        assert r.header("content-encoding") is None, ae
        assert r.header("vary") == "Accept-Encoding"
    assert get(server, "/static/page.html",
               [("Accept-Encoding", "*")]).header("content-encoding") == "gzip"


def test_gzip_range_applies_to_the_gz(server, site):
    gz = (site / "page.html.gz").read_bytes()
    r = get(server, "/static/page.html", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == gz[:10]
    assert r.header("content-range") == "bytes 0-9/%d" % len(gz)


def test_gz_sibling_that_is_not_a_file_is_ignored(server):
    r = get(server, "/static/gz-dir.txt", [("Accept-Encoding", "gzip")])
    assert r.status == 200 and r.body == b"not compressed"
    assert r.header("content-encoding") is None and r.header("vary") is None


# ---- safety --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E%2fsecret.txt",
    "/static/css/..%2F..%2Fsecret.txt", "/static/style.css%00.png", "/static/out-link",
    "/static/out-rel-link", "/static/sub", "/static/sub/", "/static/", "/static/missing.css",
    "/static/style.css/x"])
def test_refused_paths_404(server, path):
    r = get(server, path)
    assert r.status == 404, path
    assert b"SECRET" not in r.body


def test_other_methods_405(server):
    r = get(server, "/static/style.css", method="POST")
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"
    r = get(server, "/static/style.css", method="DELETE")
    assert r.status == 405


def test_body_on_a_static_get_closes_cleanly(server):
    with server.connect() as c:
        r = c.request("GET", "/static/style.css", body=b"x" * 1000)
        assert r.status == 200 and r.body == b"body { color: red }\n"
        assert r.header("connection") == "close"
        assert c.closed_by_peer()
    server.assert_healthy()


def test_pipelined_static_and_app(server):
    with server.connect() as c:
        c.send(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /static/noext HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /static/noext HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().body == b"body { color: red }\n"
        assert c.read_response().body == b"hello"
        assert c.read_response().body == b"x"
        assert c.read_response().body == b"x"


def test_app_paths_untouched(server):
    assert get(server, "/").body == b"hello"
    assert get(server, "/staticx/style.css").status == 404  # the app's own 404
    assert get(server, "/static").body == b"Not Found"  # no trailing slash: not the prefix


# ---- concurrency --------------------------------------------------------------------------------

def test_static_while_the_only_core_is_suspended(server):
    pids = worker_pids(server)
    with server.connect() as slow:
        # The head is on the wire when send returns; the worker takes it within moments.
        slow.send(b"GET /sleep?t=8 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.wait_in_request(1) == 1  # the app request holds the only core
        t0 = time.monotonic()
        r = get(server, "/static/style.css")  # a new connection: accepted and answered
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == b"body { color: red }\n"
        assert took < 3.0, took
        slow.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            slow.sock.recv(1)  # the app request is still suspended in the only core
        slow.sock.settimeout(20)
        assert slow.read_response().body == b"slept"
    assert worker_pids(server) == pids


def test_big_sparse_file_with_small_requests_alongside(server):
    pids = worker_pids(server)
    received = [0]
    done = threading.Event()

    def download():
        # A slow-ish reader: small recv buffer and reads with pauses at first.
        s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        head, rest = head.split(b"\r\n\r\n", 1)
        assert b"Content-Length: %d" % BIG in head
        n = len(rest)
        slow_until = time.monotonic() + 1.0
        while n < BIG:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            received[0] = n
            if time.monotonic() < slow_until:
                time.sleep(0.01)
        s.close()
        done.set()

    t = threading.Thread(target=download)
    t.start()
    latencies = []
    try:
        while received[0] < BIG // 50:
            time.sleep(0.01)
            assert t.is_alive() or done.is_set()
        for i in range(60):
            for path in ("/", "/static/style.css"):
                t0 = time.monotonic()
                status, _, _ = server.request("GET", path, timeout=10)
                latencies.append(time.monotonic() - t0)
                assert status == 200
            if done.is_set():
                break
    finally:
        t.join(120)
    assert received[0] == BIG
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1 if len(latencies) > 1 else 0]
    assert p99 < 1.0, latencies[-5:]
    assert worker_pids(server) == pids


# ---- uwsgi protocol --------------------------------------------------------------------------

def uwsgi_request(port, path, extra=None):
    v = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path,
         "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "x"}
    v.update(extra or {})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return uwsgi_exchange(s, v)


def test_uwsgi_protocol(server, uwsgi_port):
    head, body = uwsgi_request(uwsgi_port, "/static/style.css")
    assert head.startswith("HTTP/1.1 200")
    assert "Content-Type: text/css" in head and "Connection: close" in head
    assert body == b"body { color: red }\n"
    head, body = uwsgi_request(uwsgi_port, "/static/data.bin", {"HTTP_RANGE": "bytes=1-2"})
    assert head.startswith("HTTP/1.1 206") and body == DATA[1:3]
    head, _ = uwsgi_request(uwsgi_port, "/static/../secret.txt")
    assert head.startswith("HTTP/1.1 404")


def test_expiry_rules_over_http_and_uwsgi(server, uwsgi_port):
    """[static] expires_uri and expires_type: the first matching rule sends max-age and an
    Expires date; other files keep [static] expires (max-age alone)."""
    r = get(server, "/static/data.bin")
    assert r.header("cache-control") == "max-age=60"
    expires = email.utils.parsedate_to_datetime(r.header("expires"))
    date = email.utils.parsedate_to_datetime(r.header("date"))
    assert 59 <= (expires - date).total_seconds() <= 61
    r = get(server, "/static/data.bin?x=1")  # the URI is matched with its query: no rule
    assert r.header("cache-control") == "max-age=3600" and r.header("expires") is None
    r = get(server, "/static/page.html", [("Accept-Encoding", "gzip")])
    assert r.header("content-encoding") == "gzip"
    assert r.header("cache-control") == "max-age=0"  # expired at once, as uWSGI's 0
    expires = email.utils.parsedate_to_datetime(r.header("expires"))
    assert abs((expires - email.utils.parsedate_to_datetime(r.header("date"))).total_seconds()) <= 1
    head, _ = uwsgi_request(uwsgi_port, "/static/data.bin")
    assert "Cache-Control: max-age=60\r\n" in head and "Expires: " in head
    head, _ = uwsgi_request(uwsgi_port, "/static/data.bin", {"REQUEST_URI": "/static/data.bin?x"})
    assert "Cache-Control: max-age=3600\r\n" in head and "Expires: " not in head


# ---- access log and stats ------------------------------------------------------------------

def test_access_log_line(server):
    get(server, "/static/style.css?tag=accesslogcheck")
    text = server.wait_log("accesslogcheck")
    line = [l for l in text.splitlines() if "accesslogcheck" in l][-1]
    assert '"GET /static/style.css?tag=accesslogcheck" 200 ' in line
    assert "core=-1" in line


# ---- config errors ---------------------------------------------------------------------------

def test_config_errors(tmp_path):
    import subprocess
    from conftest import find_master
    (tmp_path / "app.py").write_text("def application(e, s): pass\n")
    (tmp_path / "afile").write_text("")
    conf = tmp_path / "server.toml"
    conf.write_text('[server]\nlisten = ["127.0.0.1:1"]\n[app]\nwsgi_file = "app.py"\n'
                    '[static]\nmap = {"static/" = ".", "/a/" = "nowhere", "/b/" = "afile"}\n'
                    'expires = -1\n')
    r = subprocess.run([find_master(), "--check", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    err = r.stdout + r.stderr
    assert "server.toml:6:8: [static] map.\"static/\"" in err, err
    assert "must start and end with '/'" in err
    assert "no such directory" in err and "not a directory" in err
    assert "[static] expires" in err
    conf.write_text('[server]\nlisten = ["127.0.0.1:1"]\n[app]\nwsgi_file = "app.py"\n'
                    '[static]\nmap = {"/s/" = "."}\nexpires = 60\n')
    r = subprocess.run([find_master(), "--check", "-c", str(conf), "--static-map", "/t/=" +
                        str(tmp_path), "--static-expires", "5"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([find_master(), "--check", "-c", str(conf), "--static-map", "/t/"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "PREFIX=DIR" in r.stdout + r.stderr
