"""Real frameworks run unmodified: Flask (examples/flask_app.py), Django
(examples/django_app/wsgi.py) and Bottle (tests/apps/bottle_app.py)."""
import json
import urllib.parse

import pytest

from conftest import APPS, EXAMPLES

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
