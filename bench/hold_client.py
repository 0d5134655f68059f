#!/usr/bin/python3
"""Opens N connections to HOST:PORT, sends one GET on each, waits for every response.

Connections are opened and the requests sent first, with plain sockets (a loopback connect
completes in the kernel, so N requests are in flight within a fraction of a second); an
asyncio loop then reads every response to EOF. Prints one JSON line: ok, failed, wall_s
(first connect to last response), connect_s (until every request was sent), first errors, and
held_max: the most requests the server held at one time, from the "BEGAN ENDED" times
(CLOCK_MONOTONIC) that bench/apps/suspend_hold.py puts in each body (None for another app),
with last_begin and first_end: all were held between those two times. Before that, once
every request is sent, one line {"sent": CLOCK_MONOTONIC time}.

--source ADDR binds every socket to that local address before connecting (127.0.0.2,
127.0.0.3, ...: each loopback source address has its own ~28,000 ephemeral ports, so several
of these processes together can hold more connections than one address has ports);
--spans FILE writes every response's [began, ended] pair there as JSON, for bench/run to
count the requests held at once across several such processes.
"""
import argparse
import asyncio
import json
import resource
import socket
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def connect(args):
    """A connected blocking socket to HOST:PORT, from --source if given."""
    if not args.source:
        return socket.create_connection((args.host, args.port), timeout=10)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        # The port is picked at connect(), per destination, not at bind(): more connections.
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((args.source, 0))
        s.connect((args.host, args.port))
    except OSError:
        s.close()
        raise
    return s


async def read_all(loop, sock, state):
    try:
        data = b""
        while True:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                break
            data += chunk
        if data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            state["ok"] += 1
            try:
                began, ended = data.split(b"\r\n\r\n", 1)[1].split()
                state["spans"].append((float(began), float(ended)))
            except ValueError:
                pass  # not the hold app's body: no concurrency figure
        else:
            raise RuntimeError("bad response %r" % data[:60])
    except Exception as e:  # counted and reported, never fatal
        state["failed"] += 1
        if len(state["errors"]) < 5:
            state["errors"].append(repr(e))
    finally:
        sock.close()


async def collect(socks, state, timeout):
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(asyncio.gather(*(read_all(loop, s, state) for s in socks)), timeout)


def most_at_once(spans):
    """The largest number of [began, ended] intervals that overlap at one instant."""
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda ev: (ev[0], ev[1]))  # an end before a begin at the same time
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def main(args):
    state = {"ok": 0, "failed": 0, "errors": [], "spans": []}
    request = (b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (args.path.encode(), args.host.encode()))
    socks = []
    start = time.monotonic()
    for _ in range(args.connections):
        try:
            s = connect(args)
            s.sendall(request)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            state["failed"] += 1
            if len(state["errors"]) < 5:
                state["errors"].append(repr(e))
    connect_s = time.monotonic() - start
    print(json.dumps({"sent": time.monotonic()}), flush=True)  # bench/run samples RSS from here
    asyncio.run(collect(socks, state, args.timeout))
    spans = state["spans"]
    if args.spans:
        with open(args.spans, "w") as f:
            json.dump(spans, f)
    print(json.dumps({"ok": state["ok"], "failed": state["failed"],
                      "wall_s": time.monotonic() - start, "connect_s": connect_s,
                      "held_max": most_at_once(spans) if spans else None,
                      # all requests were held from last_begin to first_end (if it is later)
                      "last_begin": max(b for b, _ in spans) if spans else None,
                      "first_end": min(e for _, e in spans) if spans else None,
                      "errors": state["errors"]}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--source", help="local address to connect from (e.g. 127.0.0.2)")
    p.add_argument("--spans", help="write the [began, ended] pairs to this file (JSON)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    main(args)
