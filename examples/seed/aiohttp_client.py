# Seed example 6: an aiohttp request made from a coroutine, its body returned by the callable.
# Changes from the doc: async def / await (Python 3.11), the aiohttp 3.8 client API, and the
# URL comes from SEED_AIOHTTP_URL (there is no internet here; default: the server's own index
# page). A failed fetch is handed back through the Future so the request gets a 500 instead of
# hanging its core forever.
import asyncio
import os

import aiohttp
import greenlet

URL = os.environ.get("SEED_AIOHTTP_URL", "http://127.0.0.1:9090/")

async def sleeping(me, f):
    await asyncio.sleep(2)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(URL) as response:
                body = await response.read()
        # body is bytes
        f.set_result(body)
    except Exception as exc:
        f.set_exception(exc)
    me.switch()


def application(environ, start_response):
    start_response('200 OK', [('Content-Type','text/html')])
    myself = greenlet.getcurrent()
    future = asyncio.Future()
    asyncio.Task(sleeping(myself, future))
    myself.parent.switch()
    # this time we use yield, just for fun...
    yield bytes(future.result())
