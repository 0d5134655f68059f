# The seed's suspended request (examples/seed/suspend.py), held for the seconds the query
# string asks for (/?hold=2.5; default 1), no print. The body tells when the hold began and
# ended (CLOCK_MONOTONIC, one clock for the whole machine), so the client can check that all
# of its requests were held at the same time. /plain is answered at once, never suspended.
import asyncio
import time

import greenlet


def wake(me):
    me.switch()


def application(environ, start_response):
    if environ.get('PATH_INFO') == '/plain':  # bench/run's prober: answered without a hold
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'plain']
    hold = 1.0
    for part in environ.get('QUERY_STRING', '').split('&'):
        if part.startswith('hold='):
            hold = float(part[5:])
    start_response('200 OK', [('Content-Type', 'text/plain')])
    began = time.monotonic()
    myself = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(hold, wake, myself)
    myself.parent.switch()
    return [b"%.6f %.6f" % (began, time.monotonic())]
