#!/usr/bin/python3
"""The kernel's share of a websocket broadcast on loopback, without any server: one small
send() per receiver, to N TCP connections whose other ends a second process reads with epoll.

    bench/loopback_send_floor.py [--receivers 10000] [--rounds 20]

Prints the sending process's CPU per send (user, and system: the TCP send, the receiver
side's TCP processing that loopback runs in the sender's context, and the wake-up of the
reader), from os.times(). A server that delivers one message to N websockets pays at least
the system figure per delivery; ws-broadcast's "CPU us/delivered msg" compares against it.
Needs 2 × receivers open files (sender and reader are separate processes, so each needs
receivers + a few).
"""
import argparse
import os
import select
import socket
import time

FRAME = b"\x81\x0bhello world"  # an unmasked websocket text frame, as a server sends it


def reader(port, receivers, total_bytes, ready_fd):
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(receivers)]
    ep = select.epoll()
    for c in conns:
        c.setblocking(False)
        ep.register(c.fileno(), select.EPOLLIN)
    os.write(ready_fd, b"r")
    got = 0
    while got < total_bytes:
        for fd, _ in ep.poll():
            got += len(os.read(fd, 65536))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--receivers", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            reader(port, a.receivers, a.receivers * a.rounds * len(FRAME), ready_w)
        finally:
            os._exit(0)
    os.close(ready_w)
    conns = []
    for _ in range(a.receivers):
        s, _ = listener.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    os.read(ready_r, 1)
    t0 = os.times()
    for _ in range(a.rounds):
        for s in conns:
            s.send(FRAME)
        time.sleep(0.05)  # the reader drains the round, as a broadcast round waits for all
    t1 = os.times()
    os.waitpid(pid, 0)
    sends = a.receivers * a.rounds
    print("receivers %d, sends %d: user %.2f us/send, system %.2f us/send" % (
        a.receivers, sends, (t1.user - t0.user) / sends * 1e6,
        (t1.system - t0.system) / sends * 1e6))


if __name__ == "__main__":
    main()
