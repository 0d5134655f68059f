"""aiowsgi.await_ from plain Flask views: an aiohttp client call and an asyncio
"database" coroutine, awaited from synchronous code. Only the request's core waits; the
worker's loop and its other cores keep serving.

Run: aiowsgi-master --http 127.0.0.1:9090 --wsgi-file await_flask.py --cores 100
     curl http://127.0.0.1:9090/users/2
     curl http://127.0.0.1:9090/dashboard/2      (fetches /users/2 over HTTP with aiohttp)
"""
import asyncio

import aiohttp
from flask import Flask, abort, jsonify, request

import aiowsgi

app = Flask(__name__)
application = app


class Database:
    """Stands in for an asyncio driver (asyncpg, aiomysql...): queries are coroutines with
    some latency, and a small pool bounds how many run at once."""

    def __init__(self, pool_size=5):
        self._pool = None
        self._pool_size = pool_size
        self._users = {1: "ada", 2: "grace", 3: "linus"}

    async def fetch_user(self, user_id):
        if self._pool is None:  # created on first use, on the worker's loop
            self._pool = asyncio.Semaphore(self._pool_size)
        async with self._pool:
            await asyncio.sleep(0.05)  # the round trip to the database
            name = self._users.get(user_id)
            return None if name is None else {"id": user_id, "name": name}


db = Database()
_session = None


async def http_get_json(url):
    global _session
    if _session is None:  # one connection pool per worker, bound to its loop
        _session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    async with _session.get(url) as response:
        response.raise_for_status()
        return await response.json()


@app.route("/")
def index():
    return "await_ example: try /users/1 or /dashboard/1\n"


@app.route("/users/<int:user_id>")
def user(user_id):
    row = aiowsgi.await_(db.fetch_user(user_id), timeout=5)
    if row is None:
        abort(404)
    return jsonify(row)


@app.route("/dashboard/<int:user_id>")
def dashboard(user_id):
    # Two awaitables at once: the HTTP call (to this same server) and a database query.
    url = request.host_url + "users/%d" % user_id

    async def both():
        return await asyncio.gather(http_get_json(url), db.fetch_user(user_id % 3 + 1))

    try:
        remote, friend = aiowsgi.await_(both(), timeout=5)
    except aiohttp.ClientResponseError as e:
        abort(e.status)
    except TimeoutError:
        abort(504)
    return jsonify(user=remote, friend=friend, worker=aiowsgi.worker_id(), core=aiowsgi.core_id())
