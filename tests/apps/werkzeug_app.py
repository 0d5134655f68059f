"""Fixture app: what Werkzeug (Debian's python3-flask) makes of request bodies and HEAD, next to
a plain WSGI app that answers HEAD the way Werkzeug, CherryPy and Bottle do."""
from flask import Flask, Response, jsonify, request

flask_app = Flask(__name__)


@flask_app.route("/")
def index():
    return "ok"


@flask_app.route("/echo", methods=["POST"])
def echo():
    # request.get_data() is what Werkzeug saw of the body: b"" when it believed there was none.
    return request.get_data()


@flask_app.route("/upload", methods=["POST"])
def upload():
    files = {name: len(f.read()) for name, f in request.files.items()}
    return jsonify(files=files, form=request.form.to_dict())


@flask_app.route("/stream")
def stream():
    def pieces():
        for i in range(3):
            yield "piece %d of a streamed body\n" % i
    return Response(pieces(), mimetype="text/plain")


def plain(environ, start_response):
    """No Content-Length; [] for HEAD, a generator for GET (as Werkzeug does)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    return (b"streamed line %d\n" % i for i in range(3))


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


def declared(environ, start_response):
    """The app states its length and returns no body for HEAD: the length is kept."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "30")])
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    return [b"x" * 30]


ROUTES = {"/plain": plain, "/empty": empty, "/declared": declared}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is not None:
        return route(environ, start_response)
    return flask_app(environ, start_response)
