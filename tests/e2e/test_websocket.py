"""WebSockets through the uwsgi module: the chat example with real clients (python3-websockets),
the blocking echo fixture, and broken clients that must only lose their own connection."""
import asyncio
import base64
import hashlib
import os
import struct
import time

import pytest
import websockets

from conftest import APPS, EXAMPLES, RawConnection, free_port, wait_for
from wire_clients import uwsgi_packet

UVLOOP = True  # frames are read and written through the loop's watchers: both loops

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def chat(server_factory):
    return server_factory(EXAMPLES / "websocket_chat" / "app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def echo(server_factory):
    return server_factory(APPS / "uwsgi_app.py", workers=1, cores=10)


@pytest.fixture(scope="module")
def echo_one_core(server_factory):
    return server_factory(APPS / "uwsgi_app.py", workers=1, cores=1)


def ws_url(server, path):
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def recv_until(ws, needle):
    """Messages until one contains needle (the chat also announces joins and leaves)."""
    seen = []
    while True:
        msg = await asyncio.wait_for(ws.recv(), 5)
        seen.append(msg)
        if needle in msg:
            return seen


# ---- a raw client, for frames no library would send ----

def raw_handshake(server, path):
    conn = server.connect()
    key = base64.b64encode(os.urandom(16)).decode()
    conn.send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (path, key)).encode())
    _, status, _, headers = conn.read_head()
    assert status == 101
    expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    assert dict(headers)["sec-websocket-accept"] == expected
    return conn


def client_frame(opcode, payload, fin=True, masked=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(conn):
    b0, b1 = conn.read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", conn.read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", conn.read_exact(8))[0]
    assert not b1 & 0x80, "server frames are never masked"
    return b0 & 0x0F, conn.read_exact(n)


def read_close(conn):
    """Skips data frames up to the server's close frame; returns its code; expects EOF."""
    while True:
        opcode, payload = read_frame(conn)
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0]
            assert conn.closed_by_peer(5), "the server must close the TCP connection"
            return code


def worker_starts(server):
    return server.log_text().count("worker 1 started")


# ---- the chat example ----

def test_chat_page(chat):
    status, headers, body = chat.request("GET", "/", headers={"Host": "example.test:1234"})
    assert status == 200
    assert b'new WebSocket("ws://example.test:1234/ws/")' in body


def test_two_clients_chat_ping_and_close(chat):
    async def scenario():
        async with websockets.connect(ws_url(chat, "/ws/")) as alice:
            await recv_until(alice, "joined (1 online)")
            async with websockets.connect(ws_url(chat, "/ws/")) as bob:
                await recv_until(bob, "joined (2 online)")
                await recv_until(alice, "joined (2 online)")
                await alice.send("hello from alice")
                assert (await recv_until(bob, "hello from alice"))[-1].endswith(
                    "] hello from alice")
                await recv_until(alice, "hello from alice")
                await bob.send("h\u00e9llo from bob")
                await recv_until(alice, "h\u00e9llo from bob")
                await recv_until(bob, "h\u00e9llo from bob")
                # ping/pong, answered by the server inside websocket_recv_nb
                pong = await bob.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
            # bob closed: the close handshake completed with 1000 and alice hears about it
            assert bob.close_code == 1000
            await recv_until(alice, "left (1 online)")
            await alice.send("still here")
            await recv_until(alice, "still here")
        assert alice.close_code == 1000

    run(scenario())
    chat.assert_healthy()


@pytest.mark.parametrize("name,frame,code", [
    ("unmasked", client_frame(1, b"hi", masked=False), 1002),
    ("reserved bits", bytes([0xC1]) + client_frame(1, b"hi")[1:], 1002),
    ("unknown opcode", client_frame(3, b"hi"), 1002),
    ("fragmented ping", client_frame(9, b"hi", fin=False), 1002),
    ("continuation first", client_frame(0, b"hi"), 1002),
    ("invalid utf-8", client_frame(1, b"\xc3\x28"), 1007),
    # only the header of a 2 MiB frame: refused before its payload is sent
    ("oversized", client_frame(2, b"", length=2 << 20)[:-4] + os.urandom(4), 1009),
])
def test_bad_frame_closes_only_that_connection(chat, name, frame, code):
    starts = worker_starts(chat)

    async def scenario():
        async with websockets.connect(ws_url(chat, "/ws/")) as good:
            await recv_until(good, "joined")
            bad = raw_handshake(chat, "/ws/")
            try:
                bad.send(frame)
                assert read_close(bad) == code, name
            finally:
                bad.close()
            await recv_until(good, "left")
            await good.send("after " + name)
            await recv_until(good, "after " + name)

    run(scenario())
    assert worker_starts(chat) == starts, "the worker must not crash"
    chat.assert_healthy()


# ---- the blocking API (websocket_recv) ----

def test_blocking_echo_fragments_binary_and_big_messages(echo):
    async def scenario():
        async with websockets.connect(ws_url(echo, "/ws/echo"), max_size=None) as ws:
            await ws.send("plain")
            assert await ws.recv() == "plain"
            await ws.send(["frag", "ment", "ed"])  # one message in three frames
            assert await ws.recv() == "fragmented"
            await ws.send("__big__")
            big = await ws.recv()
            assert big == b"z" * 200000
            await asyncio.wait_for(await ws.ping(), 5)
        assert ws.close_code == 1000
        async with websockets.connect(ws_url(echo, "/ws/echo_binary")) as ws:
            await ws.send(b"\x00\x01\x02")
            assert await ws.recv() == b"\x00\x01\x02"

    run(scenario())


def test_too_big_message_closes_with_1009(echo):
    async def scenario():
        async with websockets.connect(ws_url(echo, "/ws/echo"), max_size=None) as ws:
            # The server may close before the client has sent the whole message.
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.send(b"x" * ((1 << 20) + 1))
                await ws.recv()
        assert ws.close_code == 1009

    run(scenario())
    echo.assert_healthy()


def test_client_vanishing_mid_message_frees_the_core(echo_one_core):
    conn = raw_handshake(echo_one_core, "/ws/echo")
    conn.send(client_frame(1, b"x" * 1000)[:100])  # a partial frame, then the client is gone
    conn.close()
    # The only core served the websocket: this request needs it back.
    echo_one_core.assert_healthy()


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_duplicate_kept_by_the_app_leaves_the_worker_idle(server_factory):
    # The app keeps os.dup(uwsgi.connection_fd()): the socket outlives the server's own fd,
    # and a registration left in the worker's epoll set would report its EOF on every turn.
    server = server_factory(APPS / "uwsgi_app.py", workers=1, cores=2, stats_socket=True)
    conn = raw_handshake(server, "/ws/echo_keep_dup")
    try:
        conn.send(client_frame(1, b"hello"))
        assert read_frame(conn) == (1, b"hello")
        conn.send(client_frame(8, struct.pack("!H", 1000)))
        opcode, _ = read_frame(conn)
        assert opcode == 8
    finally:
        conn.close()  # the client's FIN: the socket the app still holds is readable for good
    assert wait_for(lambda: server.cores_in_request() == 0), "the websocket request must end"
    (worker,) = server.stats()["workers"]
    # Idle, a worker wakes a few times a second (its tick): milliseconds of CPU. Spinning, it
    # takes whatever share of a CPU the machine leaves it, still far more on a loaded one.
    before = cpu_seconds(worker["pid"])
    time.sleep(2.0)
    used = cpu_seconds(worker["pid"]) - before
    assert used < 0.1, "an idle worker used %.2f s of CPU in 2 s" % used
    server.assert_healthy()


def test_handshake_over_the_uwsgi_protocol(server_factory):
    # A uwsgi-protocol peer sends the request headers as HTTP_* variables.
    uwsgi_port = free_port()
    server = server_factory(APPS / "uwsgi_app.py", workers=1, cores=2,
                            server={"uwsgi_listen": ["127.0.0.1:%d" % uwsgi_port]})
    conn = RawConnection(uwsgi_port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        conn.send(uwsgi_packet({"REQUEST_METHOD": "GET", "PATH_INFO": "/ws/echo",
                                "REQUEST_URI": "/ws/echo", "QUERY_STRING": "",
                                "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "x",
                                "SERVER_PORT": "80", "HTTP_HOST": "x",
                                "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
                                "HTTP_SEC_WEBSOCKET_KEY": key,
                                "HTTP_SEC_WEBSOCKET_VERSION": "13"}))
        _, status, _, headers = conn.read_head()
        assert status == 101
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert dict(headers)["sec-websocket-accept"] == expected
        conn.send(client_frame(1, b"over uwsgi"))
        assert read_frame(conn) == (1, b"over uwsgi")
        conn.send(client_frame(8, struct.pack("!H", 1000)))
        assert read_close(conn) == 1000
    finally:
        conn.close()
    server.assert_healthy()
