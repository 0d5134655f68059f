# Seed example 3: a WSGI generator that suspends between its two chunks.
import asyncio
import greenlet

def two_seconds_elapsed(me):
    print("Hello 2 seconds elapsed")
    me.switch()

def application(environ, start_response):
    start_response('200 OK', [('Content-Type','text/html')])
    myself = greenlet.getcurrent()
    asyncio.get_event_loop().call_later(2, two_seconds_elapsed, myself)
    myself.parent.switch()
    yield b"One"
    asyncio.get_event_loop().call_later(2, two_seconds_elapsed, myself)
    myself.parent.switch()
    yield b"Two"
