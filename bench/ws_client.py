#!/usr/bin/python3
"""A websocket load client for bench/run: raw sockets, hand-made masked frames, several
processes (each with its own epoll), so that the client costs less than the server it drives.

Modes (paths of bench/apps/ws.py and ws_aiohttp.py):
  echo   --connections N to /ws/echo, split over --procs processes; each connection sends a
         32-byte text message, waits for its echo, sends the next (one at a time), for
         --duration s. Result: messages, wall_s, p50/p99 round trip.
  bcast  N receivers on /ws/bcast and one connection to /ws/trigger: a round is one message
         sent to the trigger, which the server puts on every receiver's queue; the next round
         starts once every receiver has it. Rounds go on for --duration s. Each message carries
         its CLOCK_MONOTONIC send time: the round trip is trigger send -> receiver's receipt.
  idle   N connections to /ws/echo, one echo each (so every server-side handler waits in its
         recv), then held open until bench/run says so.

Protocol with bench/run on stdin/stdout: once every connection is open (handshake done) the
client prints {"ready": N, "failed": F, "errors": [...]}; it then waits for a line on stdin
("go": run, or for idle: close and exit) and prints one JSON result line.
"""
import argparse
import base64
import json
import multiprocessing
import os
import resource
import select
import socket
import struct
import sys
import time

MASK = b"\x5a\x17\xc3\x91"
PAYLOAD = b"0123456789abcdef0123456789abcdef"  # 32 bytes of text
BUCKET_S = 1e-5  # round trips are counted in 10 us buckets up to 5 s
BUCKETS = 500000


def masked_frame(opcode, payload):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = MASK * (n // 4 + 1)
    return head + MASK + bytes(b ^ key[i] for i, b in enumerate(payload))


FRAME = masked_frame(1, PAYLOAD)
REPLY = b"\x81" + bytes([len(PAYLOAD)]) + PAYLOAD  # the server's unmasked echo


def handshake_request(host, port, path):
    key = base64.b64encode(os.urandom(16))
    return (b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path.encode(), host.encode(), port, key))


def open_websockets(args, path, count, errors):
    """count websockets, the handshakes sent first and answered after; the open ones."""
    pending = []
    for _ in range(count):
        try:
            s = socket.create_connection((args.host, args.port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(handshake_request(args.host, args.port, path))
            pending.append(s)
        except OSError as e:
            errors.append("connect: %r" % e)
    opened = []
    for s in pending:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError("handshake answered %r" % head[:40])
            if head.index(b"\r\n\r\n") + 4 != len(head):
                raise ConnectionError("bytes after the handshake")
            s.setblocking(False)
            opened.append(s)
        except OSError as e:
            errors.append("handshake: %r" % e)
            s.close()
    return opened


class Frames:
    """The slow path: what arrived on a connection when it was not exactly one expected frame
    (a partial frame, several, a ping, a close)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, sock, data):
        """Complete data messages in data (after earlier leftovers); answers pings; raises
        ConnectionError on a close frame."""
        self.buf += data
        out = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, at = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, at = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + n:
                break
            payload = bytes(self.buf[at:at + n])
            del self.buf[:at + n]
            op = b0 & 0x0F
            if op in (1, 2):
                out.append(payload)
            elif op == 9:
                sock.send(masked_frame(10, payload))
            elif op == 8:
                raise ConnectionError("the server closed: %r" % payload[:40])
        return out


def percentile(hist, q):
    total = sum(hist)
    if not total:
        return None
    want, seen = total * q, 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= want:
            return (i + 1) * BUCKET_S
    return len(hist) * BUCKET_S


def echo_worker(args, count, conn):
    errors = []
    socks = open_websockets(args, "/ws/echo", count, errors)
    conn.send({"ready": len(socks), "errors": errors})
    conn.recv()  # go
    hist = [0] * BUCKETS
    ep = select.epoll()
    by_fd, sent_at, slow = {}, {}, {}
    mono = time.monotonic
    start = mono()
    deadline = start + args.duration
    for s in socks:
        fd = s.fileno()
        by_fd[fd] = s
        ep.register(fd, select.EPOLLIN)
        sent_at[fd] = mono()
        s.send(FRAME)
    outstanding, messages, last = len(socks), 0, start
    while outstanding:
        events = ep.poll(5)
        if not events:
            errors.append("no answer for 5 s (%d outstanding)" % outstanding)
            break
        now = mono()
        for fd, _ in events:
            s = by_fd[fd]
            try:
                data = s.recv(65536)
                if data == REPLY and fd not in slow:
                    got = 1
                elif not data:
                    raise ConnectionError("the server closed the connection")
                else:
                    got = sum(1 for m in slow.setdefault(fd, Frames()).feed(s, data)
                              if m == PAYLOAD)
                    if not got:
                        continue
            except OSError as e:
                errors.append(repr(e))
                ep.unregister(fd)
                outstanding -= 1
                continue
            messages += got
            i = int((now - sent_at[fd]) / BUCKET_S)
            hist[i if i < BUCKETS else BUCKETS - 1] += 1
            last = now
            if now < deadline:
                sent_at[fd] = now
                s.send(FRAME)
            else:
                ep.unregister(fd)
                outstanding -= 1
    conn.send({"messages": messages, "wall_s": last - start, "hist": compress(hist),
               "errors": errors[:5]})
    for s in socks:
        s.close()


def bcast_worker(args, count, conn):
    errors = []
    socks = open_websockets(args, "/ws/bcast", count, errors)
    conn.send({"ready": len(socks), "errors": errors})
    hist = [0] * BUCKETS
    ep = select.epoll()
    by_fd, slow = {}, {}
    for s in socks:
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    ep.register(conn.fileno(), select.EPOLLIN)
    mono = time.monotonic
    received = 0
    alive = len(socks)
    while True:
        events = ep.poll(30)
        if not events:
            errors.append("nothing for 30 s")
            break
        now = mono()
        stop = False
        for fd, _ in events:
            if fd == conn.fileno():
                stop = conn.recv() == "stop"
                continue
            s = by_fd[fd]
            try:
                data = s.recv(65536)
                if len(data) == len(REPLY) and data[:2] == REPLY[:2] and fd not in slow:
                    msgs = (data[2:],)
                elif not data:
                    raise ConnectionError("the server closed the connection")
                else:
                    msgs = slow.setdefault(fd, Frames()).feed(s, data)
            except OSError as e:
                errors.append(repr(e))
                ep.unregister(fd)
                alive -= 1
                continue
            for m in msgs:
                i = int((now - float(m)) / BUCKET_S)
                hist[i if i < BUCKETS else BUCKETS - 1] += 1
                received += 1
                if received % alive == 0:
                    conn.send(received // alive)  # a round is complete here
        if stop:
            break
    conn.send({"messages": received, "hist": compress(hist), "errors": errors[:5]})
    for s in socks:
        s.close()


def idle_worker(args, count, conn):
    errors = []
    socks = open_websockets(args, "/ws/echo", count, errors)
    for s in socks:
        s.setblocking(True)
        s.settimeout(30)
        try:
            s.sendall(FRAME)
            data = b""
            while len(data) < len(REPLY):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            if data != REPLY:
                raise ConnectionError("unexpected echo %r" % data[:40])
        except OSError as e:
            errors.append(repr(e))
    conn.send({"ready": len(socks), "errors": errors})
    conn.recv()
    for s in socks:
        s.close()
    conn.send({"messages": len(socks), "errors": []})


def compress(hist):
    return {i: n for i, n in enumerate(hist) if n}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("echo", "bcast", "idle"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--duration", type=float, default=10)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    target = {"echo": echo_worker, "bcast": bcast_worker, "idle": idle_worker}[args.mode]
    procs = max(1, min(args.procs, args.connections))
    shares = [args.connections // procs + (i < args.connections % procs) for i in range(procs)]
    pipes, workers = [], []
    ctx = multiprocessing.get_context("fork")
    for share in shares:
        mine, theirs = ctx.Pipe()
        w = ctx.Process(target=target, args=(args, share, theirs), daemon=True)
        w.start()
        pipes.append(mine)
        workers.append(w)
    readies = [c.recv() for c in pipes]
    ready = sum(r["ready"] for r in readies)
    errors = [e for r in readies for e in r["errors"]]
    trig = None
    if args.mode == "bcast":
        errs = []
        found = open_websockets(args, "/ws/trigger", 1, errs)
        errors += errs
        trig = found[0] if found else None
        if trig is not None:
            trig.setblocking(True)
    print(json.dumps({"ready": ready, "failed": args.connections - ready, "errors": errors[:5]}),
          flush=True)
    sys.stdin.readline()

    start = time.monotonic()
    rounds = 0
    if args.mode == "bcast":
        live = [c for c, r in zip(pipes, readies) if r["ready"]]
        while trig is not None and live and time.monotonic() - start < args.duration:
            # the payload is the send time, padded to the echo's 32 bytes
            trig.sendall(masked_frame(1, b"%-32.6f" % time.monotonic()))
            rounds += 1
            for c in live:
                if not c.poll(30):
                    errors.append("round %d not delivered in 30 s" % rounds)
                    live = []
                    break
                c.recv()
        wall = time.monotonic() - start
        for c in pipes:
            c.send("stop")
    else:
        for c in pipes:
            c.send("go")
    results = [c.recv() for c in pipes]
    for w in workers:
        w.join(10)
    if trig is not None:
        trig.close()
    hist = [0] * BUCKETS
    for r in results:
        for i, n in r.get("hist", {}).items():
            hist[int(i)] += n
        errors += r["errors"]
    messages = sum(r["messages"] for r in results)
    if args.mode == "echo":
        wall = max(r["wall_s"] for r in results)
    elif args.mode == "idle":
        wall = time.monotonic() - start
    p50, p99 = percentile(hist, 0.5), percentile(hist, 0.99)
    print(json.dumps({"messages": messages, "rounds": rounds, "wall_s": wall,
                      "p50_ms": p50 * 1e3 if p50 else None, "p99_ms": p99 * 1e3 if p99 else None,
                      "errors": errors[:5]}), flush=True)


if __name__ == "__main__":
    main()
