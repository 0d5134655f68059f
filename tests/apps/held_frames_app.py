# Requests suspended with few or many Python frames on their core (tests/e2e/test_held_frames.py).
#   /deep?n=N&t=T   recurses N calls deep, suspends its core T seconds there, returns "N CORE"
#   /greenlet       what the core's greenlet looks like from inside the app, as JSON
#   anything else   "ready"
import asyncio
import json

import greenlet

import aiowsgi


def wake(me):
    me.switch()


def suspend(seconds):
    me = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(seconds, wake, me)
    me.parent.switch()


def deep(n, seconds):
    if n == 0:
        suspend(seconds)
        return 0
    return deep(n - 1, seconds) + 1


def application(environ, start_response):
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    path = environ["PATH_INFO"]
    if path == "/deep":
        depth = deep(int(query.get("n", "0")), float(query.get("t", "0")))
        body = "%d %d" % (depth, environ["aiowsgi.core"])
    elif path == "/greenlet":
        me = greenlet.getcurrent()
        me.custom = "apps may still set attributes"
        body = json.dumps({"core_id": aiowsgi.core_id(), "environ_core": environ["aiowsgi.core"],
                           "is_greenlet": isinstance(me, greenlet.greenlet),
                           "is_core_greenlet": type(me) is aiowsgi.CoreGreenlet,
                           "custom": me.custom, "dict": sorted(vars(me))})
        del me.custom
    else:
        body = "ready"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
