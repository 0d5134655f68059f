"""[server] add_header (uWSGI's and nginx's add_header): the fields go out on every response
the server sends for a request: the app's (beside a field of the same name the app sets), a
static file's 200/206/304/416/404, and the server's own errors."""
import socket
import subprocess

import pytest

from conftest import find_master

APP = """\
def application(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Frame-Options", "DENY")])
    return [b"hello"]
"""
ADDED = ["X-Frame-Options: SAMEORIGIN", "Strict-Transport-Security:max-age=63072000 "]


@pytest.fixture(scope="module")
def server(server_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "app.py").write_text(APP)
    (root / "static").mkdir()
    (root / "static" / "a.txt").write_text("0123456789")
    return server_factory(root / "app.py", cores=2,
                          server={"add_header": ADDED},
                          static={"map": {"/static/": str(root / "static")}})


def raw(port, request):
    """Sends `request` bytes, reads to EOF: (status, [header lines])."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(head[0].split()[1]), head[1:]


def get(port, path, *extra):
    lines = "".join(h + "\r\n" for h in extra)
    return raw(port, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n"
                      % (path, lines)).encode())


def assert_added(headers):
    assert "X-Frame-Options: SAMEORIGIN" in headers, headers
    assert "Strict-Transport-Security: max-age=63072000" in headers, headers


def test_app_response_carries_both_its_own_and_the_added_field(server):
    status, headers = get(server.port, "/")
    assert status == 200
    assert_added(headers)
    assert "X-Frame-Options: DENY" in headers


def test_server_errors_carry_them(server):
    status, headers = get(server.port, "/boom")
    assert status == 500
    assert_added(headers)
    status, headers = raw(server.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status == 400
    assert_added(headers)


def test_static_answers_carry_them(server):
    status, headers = get(server.port, "/static/a.txt")
    assert status == 200
    assert_added(headers)
    etag = next(h.split(": ", 1)[1] for h in headers if h.lower().startswith("etag:"))
    for extra, expected in ((["If-None-Match: " + etag], 304), (["Range: bytes=2-4"], 206),
                            (["Range: bytes=50-60"], 416), ([], 404)):
        path = "/static/a.txt" if expected != 404 else "/static/missing.txt"
        status, headers = get(server.port, path, *extra)
        assert status == expected, (extra, headers)
        assert_added(headers)


@pytest.mark.parametrize("value, reason", [
    ("Bad Name: x", "the name must be an HTTP token"),
    ("Content-Length: 5", "the server writes Content-Length itself"),
    ("no colon", 'must be "Name: value"'),
])
def test_bad_fields_are_config_errors(tmp_path, value, reason):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "s.toml").write_text('[server]\nlisten = ["127.0.0.1:1"]\nadd_header = ["%s"]\n'
                                     '[app]\nwsgi_file = "app.py"\n' % value)
    out = subprocess.run([find_master(), "--check", "-c", "s.toml"], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert '[server] add_header = "%s": %s' % (value, reason) in out.stderr, out.stderr
    flag = subprocess.run([find_master(), "--check", "--http", "127.0.0.1:1", "--wsgi-file",
                           "app.py", "--add-header", value], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert flag.returncode == 1
    assert "command line: --add-header %s: %s" % (value, reason) in flag.stderr, flag.stderr
