# Seed example 4: the callable spawns a coroutine with asyncio.Task and waits for it.
# (The doc's @asyncio.coroutine / yield from are async def / await: removed in Python 3.11.)
import asyncio
import greenlet

async def sleeping(me):
    await asyncio.sleep(2)
    # back to callable
    me.switch()

def application(environ, start_response):
    start_response('200 OK', [('Content-Type','text/html')])
    myself = greenlet.getcurrent()
    # enqueue the coroutine
    asyncio.Task(sleeping(myself))
    # suspend to event loop
    myself.parent.switch()
    # back from event loop
    return [b"Hello World"]
