"""Real frameworks run unmodified: Flask (examples/flask_app.py), Django
(examples/django_app/wsgi.py) and Bottle (tests/apps/bottle_app.py)."""
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
