"""Fixture for tests/e2e/test_frameworks.py: a Bottle app with the routes the Flask and Django
examples have, served unmodified."""
import bottle

app = application = bottle.Bottle()


@app.route("/")
def index():
    bottle.response.content_type = "text/plain"
    return "Hello from Bottle"


@app.route("/hello/<name>")
def hello(name):
    bottle.response.content_type = "text/plain"
    return "Hello, %s!" % name


@app.post("/form")
def form():
    # getunicode: Bottle keeps raw form values as latin-1 text (WSGI's native strings).
    return {"name": bottle.request.forms.getunicode("name", default=""),
            "tags": bottle.request.forms.getall("tag")}
