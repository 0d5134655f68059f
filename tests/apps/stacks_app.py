"""Requests that wait or block in functions of their own, so the stacks the server logs
(harakiri, SIGUSR2) can be checked for this file's names and lines (tests/e2e/test_stacks.py).

/wait_in_alpha, /wait_in_beta, /wait_in_gamma   suspend the core until /release
/sleep_suspended?s                              aiowsgi.sleep(s): suspended, not blocking
/block?s                                        time.sleep(s): blocks the whole loop
/release                                        wakes every waiting request
"""
import time

import aiowsgi
import greenlet

WAITING = []


def park():
    # The core waits here until /release switches back into it.
    me = greenlet.getcurrent()
    WAITING.append(me)
    me.parent.switch()


def wait_in_alpha():
    park()
    return b"alpha"


def wait_in_beta():
    park()
    return b"beta"


def wait_in_gamma():
    park()
    return b"gamma"


def sleep_suspended(seconds):
    aiowsgi.sleep(seconds)  # suspended_here
    return b"slept"


def block_the_loop(seconds):
    time.sleep(seconds)  # blocking_here
    return b"blocked"


def release():
    woken = len(WAITING)
    loop = aiowsgi.loop()
    while WAITING:
        loop.call_soon(WAITING.pop().switch)
    return str(woken).encode()


ROUTES = {"/wait_in_alpha": wait_in_alpha, "/wait_in_beta": wait_in_beta,
          "/wait_in_gamma": wait_in_gamma, "/release": release}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    arg = environ.get("QUERY_STRING", "")
    if path in ROUTES:
        body = ROUTES[path]()
    elif path == "/sleep_suspended":
        body = sleep_suspended(float(arg))
    elif path == "/block":
        body = block_the_loop(float(arg))
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
