# The seed's suspended request (examples/seed/suspend.py) with a 1 s sleep and no print.
import asyncio
import greenlet


def wake(me):
    me.switch()


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/html')])
    myself = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(1.0, wake, myself)
    myself.parent.switch()
    return [b"Hello World"]
