#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from the inputs
the unit tests use (worker/protocol/*_test.cpp, config/config_test.cpp). The seeds are small
on purpose: the fuzzer grows its own corpus in a scratch folder (tests/fuzz/run), never in the repo.
Each seed starts with the control bytes its target reads first (read size, limits)."""
import hashlib
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"

HTTP = [
    b"GET /search?q=wsgi&lang=en HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\n\r\n",
    b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 11\r\n\r\nhello=world",
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"\r\nGET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Expect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
]

CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n",
    b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"ffffffffffffffffff\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
]


def uwsgi_packet(pairs, modifier1=0, modifier2=0):
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                     for k, v in pairs)
    return bytes([modifier1]) + struct.pack("<H", len(block)) + bytes([modifier2]) + block


UWSGI = [
    uwsgi_packet([(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/hello"),
                  (b"QUERY_STRING", b"a=1"), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
                  (b"HTTP_HOST", b"example.com"), (b"CONTENT_LENGTH", b"")]),
    uwsgi_packet([(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5")]) + b"hello",
    uwsgi_packet([(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", b"1"),
                  (b"CONTENT_LENGTH", b"2")]),
    uwsgi_packet([(b"REQUEST_METHOD", b"GET")], modifier1=5),
]


def ws_frame(first, payload, key=b"\x37\xfa\x21\x3d"):
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


WEBSOCKET = [
    ws_frame(0x81, b"Hello"),
    ws_frame(0x01, b"Hel") + ws_frame(0x89, b"p1") + ws_frame(0x80, b"lo"),
    ws_frame(0x82, bytes(300)) + ws_frame(0x8A, b"pong"),
    ws_frame(0x88, struct.pack(">H", 1000) + b"bye"),
    ws_frame(0x81, b"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80"),
    bytes([0x81, 0x05]) + b"Hello",  # unmasked: a protocol error
]

CONFIG = [
    b'[server]\nlisten = ["127.0.0.1:8000", "unix:/run/app.sock"]\nworkers = 2\ncores = 100\n'
    b'[app]\nmodule = "myapp:application"\nenv = { A = "1" }\n'
    b'[limits]\nharakiri = 30\nheader_timeout = 2.5\nmax_body_bytes = 1048576\n'
    b'[log]\nlevel = "debug"\nformat = "json"\n',
    b'[server]\nlisten = [":9090"]\nuwsgi_listen = ["[::1]:3031"]\n[app]\nwsgi_file = "/etc/hostname"\n'
    b'[stats]\nlisten = "127.0.0.1:9191"\nmetrics = "127.0.0.1:9192"\n',
    b'[server]\nworkers = 0\nbogus = 1\n[app]\nmodule = "a-b"\n',
    b'[server\nlisten = "x"\n',
]


def response(status, fields, body=b""):
    """A response_head input (after its flag byte): length-prefixed status, names and
    values, 0xff, then the body."""
    out = bytes([len(status)]) + status
    for name, value in fields:
        out += bytes([len(name)]) + name + bytes([len(value)]) + value
    return out + b"\xff" + body


RESPONSE = [
    response(b"200 OK", [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")], b"hello"),
    response(b"200 OK", [(b"Content-Type", b"text/html")], b"<p>chunked</p>" * 3),
    response(b"404 Not Found", [(b"Connection", b"keep-alive, close"), (b"Date", b"x")], b"no"),
    response(b"204 No Content", [(b"Content-Length", b"0")]),
    response(b"304 Not Modified", [(b"ETag", b'"abc"')]),
    response(b"100 Continue", []),
    response(b"200 OK", [(b"X-A", b"a\r\nX-Injected: yes")]),
    response(b"200 OK", [(b"Content-Length", b"5"), (b"Content-Length", b"5")], b"hello"),
    response(b"200 OK", [(b"Content-Length", b"+5")], b"hello"),
    response(b"200 OK", [(b"Content-Length", b"99999999999999999999")], b"hello"),
    response(b"200 OK", [(b"Transfer-Encoding", b"chunked")], b"x"),
]

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

PROXY = [
    b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 65535 80\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    V2_SIG + b"\x21\x11\x00\x11" + bytes([203, 0, 113, 9, 10, 0, 0, 1, 0xdb, 0xe4, 1, 0xbb])
    + b"\x04\x00\x02h2GET",
    V2_SIG + b"\x21\x21\x00\x24" + bytes(range(32)) + b"\x30\x39\x00\x50",
    V2_SIG + b"\x20\x00\x00\x00",
    V2_SIG + b"\x21\x31\x00\xd8" + bytes(216),
]


def write(target, seeds, prefix=b""):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        data = prefix + s
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    # Control bytes: whole reads (0xff) and byte-at-a-time (0x00); default limits and small ones.
    for ctl in (b"\xff\x00", b"\x00\x03"):
        write("request_parser", HTTP, ctl)
        write("uwsgi_parser", UWSGI, ctl)
        write("websocket", WEBSOCKET, ctl)
    for ctl in (b"\xff\x00\x00", b"\x02\x02\x00"):
        write("chunked_body", CHUNKED, ctl)
    write("chunked_body", [b"hello world"], b"\x03\x01\x0b")  # Content-Length 11
    write("config", CONFIG)
    write("proxy_protocol", PROXY)
    # Flags: HTTP/1.1 keep-alive, large writes; HTTP/1.0; HEAD with a known length, tiny writes.
    for ctl in (b"\xf6", b"\x34", b"\x0f"):
        write("response_head", RESPONSE, ctl)
