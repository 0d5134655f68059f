# Seed example 5: a coroutine hands its result back through an asyncio.Future.
# (The doc's @asyncio.coroutine / yield from are async def / await: removed in Python 3.11.)
import asyncio
import greenlet

async def sleeping(me, f):
    await asyncio.sleep(2)
    f.set_result(b"Hello World")
    # back to callable
    me.switch()


def application(environ, start_response):
    start_response('200 OK', [('Content-Type','text/html')])
    myself = greenlet.getcurrent()
    future = asyncio.Future()
    # enqueue the coroutine with a Future
    asyncio.Task(sleeping(myself, future))
    # suspend to event loop
    myself.parent.switch()
    # back from event loop
    return [future.result()]
