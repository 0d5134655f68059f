"""Real frameworks run unmodified: Flask (examples/flask_app.py), Django
(examples/django_app/wsgi.py) and Bottle (tests/apps/bottle_app.py); what Werkzeug makes of
chunked bodies and HEAD (tests/apps/werkzeug_app.py)."""
import json
import os
import subprocess
import sys
import urllib.parse

import pytest

from conftest import APPS, EXAMPLES
from threads_helpers import concurrently

FORM = urllib.parse.urlencode([("name", "Zoë"), ("tag", "a"), ("tag", "b")])
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def flask_server(server_factory):
    return server_factory(EXAMPLES / "flask_app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def django_server(server_factory):
    return server_factory(EXAMPLES / "django_app" / "wsgi.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def bottle_server(server_factory):
    return server_factory(APPS / "bottle_app.py", workers=1, cores=10)


@pytest.fixture(params=["flask", "django", "bottle"])
def framework(request):
    return request.getfixturevalue(request.param + "_server"), request.param


def test_index(framework):
    server, name = framework
    status, _, body = server.request("GET", "/")
    assert status == 200
    assert body == ("Hello from %s" % name.capitalize()).encode()


def test_route_with_argument(framework):
    server, _ = framework
    status, _, body = server.request("GET", "/hello/world")
    assert (status, body) == (200, b"Hello, world!")


def test_post_form(framework):
    server, _ = framework
    status, headers, body = server.request("POST", "/form", body=FORM, headers=FORM_HEADERS)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"name": "Zoë", "tags": ["a", "b"]}


def test_unknown_path_is_404(framework):
    server, _ = framework
    status, _, _ = server.request("GET", "/no/such/page")
    assert status == 404
    server.assert_healthy()


def test_flask_json_body_and_abort(flask_server):
    payload = {"k": [1, 2, {"x": "é"}]}
    status, _, body = flask_server.request("POST", "/json", body=json.dumps(payload),
                                           headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"received": payload}
    assert flask_server.request("GET", "/forbidden")[0] == 403


def test_django_rejects_unknown_host(django_server):
    status, _, _ = django_server.request("GET", "/", headers={"Host": "evil.example"})
    assert status == 400


# ---- What Werkzeug (Flask) makes of the server's framing (tests/apps/werkzeug_app.py) ----

@pytest.fixture(scope="module")
def werkzeug_server(server_factory):
    return server_factory(APPS / "werkzeug_app.py", workers=1, cores=10)


def chunked(data, size):
    """`data` as a chunked request body in chunks of `size` bytes."""
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


def test_flask_reads_a_chunked_body(werkzeug_server):
    # Werkzeug takes "no CONTENT_LENGTH" for an empty body unless wsgi.input_terminated says
    # reading wsgi.input to its end is safe.
    with werkzeug_server.connect() as conn:
        resp = conn.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                            body=chunked(b"hello world", 4))
    assert resp.status == 200 and resp.body == b"hello world", resp


def test_flask_sees_a_chunked_multipart_upload(werkzeug_server):
    boundary = "aiowsgi-test-boundary"
    content = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # 3 MiB
    body = (("--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"blob.bin\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary)).encode()
            + content + ("\r\n--%s--\r\n" % boundary).encode())
    with werkzeug_server.connect(timeout=60) as conn:
        resp = conn.request("POST", "/upload",
                            headers=[("Transfer-Encoding", "chunked"),
                                     ("Content-Type", "multipart/form-data; boundary=" + boundary)],
                            body=chunked(body, 65536))
    assert resp.status == 200, resp
    assert json.loads(resp.body) == {"files": {"blob": len(content)}, "form": {"note": "hi"}}


@pytest.mark.parametrize("path", ["/stream", "/plain"])
def test_head_of_a_streamed_response_has_no_invented_length(werkzeug_server, path):
    # Werkzeug (and a plain app like it) returns an empty body for HEAD and a generator for
    # GET: GET is chunked, so HEAD must not announce "Content-Length: 0" (RFC 9110 9.3.2).
    with werkzeug_server.connect() as conn:
        get = conn.request("GET", path)
        head = conn.request("HEAD", path)
        again = conn.request("GET", path)  # the connection still frames the next response
    assert get.status == 200 and get.header("transfer-encoding") == "chunked", get
    assert get.header("content-length") is None and len(get.body) > 0
    assert head.status == 200 and head.body == b"", head
    assert head.header("content-length") is None, head
    assert head.header("transfer-encoding") is None, head
    assert again.status == 200 and again.body == get.body


def test_head_keeps_lengths_the_server_knows(werkzeug_server):
    with werkzeug_server.connect() as conn:
        declared = conn.request("HEAD", "/declared")
        empty_get = conn.request("GET", "/empty")
        declared_get = conn.request("GET", "/declared")
    assert declared.status == 200 and declared.header("content-length") == "30", declared
    assert empty_get.status == 200 and empty_get.header("content-length") == "0", empty_get
    assert declared_get.body == b"x" * 30


def test_django_example_writes_and_reads_its_database(server_factory, tmp_path):
    # The README's steps: migrate once, then serve; the SQLite file comes from the environment.
    db = tmp_path / "notes.sqlite3"
    env = dict(os.environ, AIOWSGI_DJANGO_DB=str(db), PYTHONDONTWRITEBYTECODE="1")
    migrate = subprocess.run([sys.executable, str(EXAMPLES / "django_app" / "manage.py"),
                              "migrate", "--noinput"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    server = server_factory(EXAMPLES / "django_app" / "wsgi.py", workers=1, cores=10,
                            env={"AIOWSGI_DJANGO_DB": str(db)})
    status, _, body = server.request("POST", "/notes", body="text=first", headers=FORM_HEADERS)
    assert status == 200, server.wait_log("Error", timeout=5)[-3000:]  # the 500 page hides it
    assert json.loads(body) == {"count": 1, "latest": [{"id": 1, "text": "first"}]}
    # Ten at once, each core on its own connection.
    with_notes = concurrently(server, ["/notes"] * 10)
    assert all(r["count"] == 1 for r in with_notes), with_notes
    status, _, body = server.request("GET", "/notes")
    assert status == 200 and json.loads(body)["latest"][0]["text"] == "first"
