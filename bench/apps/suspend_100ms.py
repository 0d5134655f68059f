# The seed's suspended request (examples/seed/suspend.py) with a 100 ms sleep and no print.
import asyncio
import greenlet


def wake(me):
    me.switch()


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/html')])
    myself = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(0.1, wake, myself)
    myself.parent.switch()
    return [b"Hello World"]
