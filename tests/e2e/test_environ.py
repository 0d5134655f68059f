"""The environ a WSGI app sees (PEP 3333 + aiowsgi.core), checked through tests/apps/environ_app.py."""
import json

import pytest

from conftest import APPS

CORES = 4


@pytest.fixture(scope="module")
def echo(server_factory):
    return server_factory(APPS / "environ_app.py", workers=2, cores=CORES)


def get_environ(server, method="GET", target="/", headers=(), body=b"", version="HTTP/1.1"):
    with server.connect() as conn:
        resp = conn.request(method, target, headers=headers, body=body, version=version)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def test_request_line_keys(echo):
    env = get_environ(echo, target="/caf%C3%A9/x%20y?a=1&b=%20&c=%C3%A9")
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    # PEP 3333: PATH_INFO is percent-decoded bytes, carried as latin-1 str
    assert env["PATH_INFO"] == "/café/x y".encode("utf-8").decode("latin-1")
    assert env["QUERY_STRING"] == "a=1&b=%20&c=%C3%A9"  # raw, not decoded
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(echo.port)
    assert env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_HOST"] == "127.0.0.1"


def test_wsgi_keys(echo):
    env = get_environ(echo)
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multiprocess"] is True, "2 workers: wsgi.multiprocess must be true"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.run_once"] is False
    # Reading wsgi.input to its end is safe (the server frames every body): Werkzeug and
    # WebOb read a chunked body only when they see this.
    assert env["wsgi.input_terminated"] is True
    assert env["has_input_read"] is True
    assert env["has_errors_write"] is True
    assert "wsgi.file_wrapper" in env
    assert isinstance(env["aiowsgi.core"], int) and 0 <= env["aiowsgi.core"] < CORES, env.get(
        "aiowsgi.core")


def test_empty_query_string_is_present(echo):
    env = get_environ(echo, target="/plain")
    assert env["QUERY_STRING"] == ""
    assert env["PATH_INFO"] == "/plain"


def test_http_headers(echo):
    env = get_environ(echo, headers=[("X-Multi", "one"), ("X-Custom-Header", "v1"),
                                     ("X-Multi", "two"), ("Accept", "text/plain")])
    assert env["HTTP_X_MULTI"] == "one, two"
    assert env["HTTP_X_CUSTOM_HEADER"] == "v1"
    assert env["HTTP_ACCEPT"] == "text/plain"


def test_content_type_and_length(echo):
    env = get_environ(echo, method="POST", target="/form",
                      headers=[("Content-Type", "application/x-www-form-urlencoded")],
                      body=b"a=1&b=2")
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "7"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_repeated_values_are_one_str_and_changed_ones_are_new(echo):
    # Requests held by the thousand often repeat their path, query, peer address and Host: the
    # worker gives them the str the last request got (one object, not one each).
    with echo.connect() as conn:
        envs = []
        for target in ("/kept/a?x=1", "/kept/a?x=1", "/kept/a?x=2"):
            resp = conn.request("GET", target)
            assert resp.status == 200, resp
            envs.append(json.loads(resp.body))
    first, same, other = envs
    assert first == same  # values and ids
    assert other["QUERY_STRING"][0] == "x=2" and other["REQUEST_URI"][0] == "/kept/a?x=2"
    assert other["QUERY_STRING"][1] != first["QUERY_STRING"][1]
    assert other["REQUEST_URI"][1] != first["REQUEST_URI"][1]
    for key in ("PATH_INFO", "REMOTE_ADDR", "HTTP_HOST"):
        assert other[key] == first[key], key


def test_http_10_protocol(echo):
    env = get_environ(echo, version="HTTP/1.0")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


BODY = b"line1\nline2\nlast"


@pytest.mark.parametrize("mode,expected", [
    ("read", "line1\nline2\nlast"),
    ("read-sized", ["line1", "\nline", "2\nlas", "t"]),
    ("readline", ["line1\n", "line2\n", "last"]),
    ("readlines", ["line1\n", "line2\n", "last"]),
    ("iter", ["line1\n", "line2\n", "last"]),
])
def test_wsgi_input(echo, mode, expected):
    assert get_environ(echo, "POST", "/input/" + mode, body=BODY) == expected


def test_wsgi_input_chunked(echo):
    body = b"6\r\nline1\n\r\n6\r\nline2\n\r\n4\r\nlast\r\n0\r\n\r\n"
    got = get_environ(echo, "POST", "/input/readlines",
                      headers=[("Transfer-Encoding", "chunked")], body=body)
    assert got == ["line1\n", "line2\n", "last"]


def test_wsgi_input_empty(echo):
    assert get_environ(echo, "POST", "/input/read", body=b"",
                       headers=[("Content-Length", "0")]) == ""


def test_remote_port_is_each_connections_own(echo):
    # Requests alternate between open keep-alive connections, so one core serves several
    # peers in turn: each request must name its own connection's port, never a previous one's.
    conns = [echo.connect() for _ in range(5)]
    served = {}  # (pid, core) -> the ports it served
    try:
        for _ in range(2):
            for conn in conns:
                resp = conn.request("GET", "/")
                assert resp.status == 200, resp
                env = json.loads(resp.body)
                assert env["REMOTE_ADDR"] == "127.0.0.1"
                assert env["REMOTE_PORT"] == str(conn.sock.getsockname()[1])
                served.setdefault((env["pid"], env["aiowsgi.core"]), set()).add(env["REMOTE_PORT"])
        assert any(len(ports) > 1 for ports in served.values()), served
    finally:
        for conn in conns:
            conn.close()
