"""A small Flask app under aiowsgi: aiowsgi-master --http 127.0.0.1:9090 --wsgi-file flask_app.py"""
from flask import Flask, abort, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/hello/<name>")
def hello(name):
    return "Hello, %s!" % name


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "POST":
        return jsonify(name=request.form.get("name", ""), tags=request.form.getlist("tag"))
    return '<form method="post"><input name="name"><input type="submit"></form>'


@app.route("/json", methods=["POST"])
def echo_json():
    return jsonify(received=request.get_json(force=True))


@app.route("/forbidden")
def forbidden():
    abort(403)


application = app
