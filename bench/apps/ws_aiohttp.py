#!/usr/bin/python3
# bench/apps/ws.py's logic on aiohttp (Debian's python3-aiohttp), for bench/run's websocket
# workloads: one process, the asyncio loop, no access log.
#   python3 ws_aiohttp.py --port PORT
import argparse
import asyncio

from aiohttp import WSMsgType, web

clients = set()


async def echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def receiver(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    queue = asyncio.Queue()
    clients.add(queue)

    async def until_closed():
        async for _ in ws:
            pass

    reading = asyncio.ensure_future(until_closed())  # answers pings, sees the close
    try:
        while not ws.closed:
            await ws.send_str(await queue.get())
    except ConnectionError:
        pass
    finally:
        clients.discard(queue)
        reading.cancel()
    return ws


async def trigger(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            for queue in clients:
                queue.put_nowait(msg.data)
    return ws


async def ok(request):
    return web.Response(text="ok")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    app = web.Application()
    app.add_routes([web.get("/ws/echo", echo), web.get("/ws/bcast", receiver),
                    web.get("/ws/trigger", trigger), web.get("/{tail:.*}", ok)])
    web.run_app(app, host="127.0.0.1", port=args.port, backlog=4096, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
