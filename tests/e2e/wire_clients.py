"""Wire-level clients for the end-to-end tests: a uwsgi-protocol request (what nginx's
uwsgi_pass sends) and RawConnection, a raw HTTP/1.1 client that keeps its read buffer between
responses (pipelining, malformed input, half-closed connections), with its Response.

conftest.py uses RawConnection for its servers and also exports it to tests.
"""
import socket
import struct
import time


def uwsgi_packet(variables):
    """A uwsgi-protocol request packet (what nginx's uwsgi_pass sends) for `variables`, a
    dict or a list of (name, value) pairs."""
    items = variables.items() if isinstance(variables, dict) else variables
    body = b""
    for k, v in items:
        k, v = k.encode(), v.encode()
        body += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return struct.pack("<BHB", 0, len(body), 0) + body


def uwsgi_exchange(sock, variables):
    """Sends one uwsgi-protocol request on the connected `sock` and reads the answer to the
    end of the connection: (head as text, body bytes)."""
    sock.sendall(uwsgi_packet(variables))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), body


class Response:
    def __init__(self, version, status, reason, headers, body, chunks):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # [(lowercase name, value str)], in order
        self.body, self.chunks = body, chunks  # chunks: chunked-encoding pieces, or None

    def header(self, name, default=None):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return default

    def __repr__(self):
        return "<Response %s %d %r %r>" % (self.version, self.status, self.headers, self.body[:200])


class RawConnection:
    """A raw TCP client that keeps its read buffer between responses (pipelining)."""

    def __init__(self, port, timeout=10, source=None):
        # source: the client's own address ("127.0.0.2": any 127/8 address is loopback), for
        # tests that need a peer other than 127.0.0.1.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self):
        while b"\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed mid-line; have %r" % self.buf)
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed: wanted %d bytes, have %d" % (n, len(self.buf)))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_to_close(self):
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def read_head(self):
        line = self.readline()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self.readline()
            if line in (b"\r\n", b"\n"):
                break
            name, value = line.decode("latin-1").split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
        return version, status, reason, headers

    def read_response(self, method="GET", skip_informational=True):
        while True:
            version, status, reason, headers = self.read_head()
            if not (skip_informational and 100 <= status < 200 and status != 101):
                break
        resp = Response(version, status, reason, headers, b"", None)
        te = (resp.header("transfer-encoding") or "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        if "chunked" in te:
            resp.chunks = []
            while True:
                size_line = self.readline()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.readline() not in (b"\r\n", b"\n"):
                        pass  # trailers
                    break
                resp.chunks.append(self.read_exact(size))
                assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"
            resp.body = b"".join(resp.chunks)
        elif resp.header("content-length") is not None:
            resp.body = self.read_exact(int(resp.header("content-length")))
        else:
            resp.body = self.read_to_close()
        return resp

    def request(self, method, path, headers=(), body=b"", version="HTTP/1.1"):
        head = "%s %s %s\r\nHost: 127.0.0.1\r\n" % (method, path, version)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        if body and not any(k.lower() in ("content-length", "transfer-encoding")
                            for k, _ in headers):
            head += "Content-Length: %d\r\n" % len(body)
        self.send(head.encode("latin-1") + b"\r\n" + body)
        return self.read_response(method)

    def closed_by_peer(self, timeout=3.0):
        """True when the server closes the connection within `timeout` (after any data)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._fill():
                    return True
        except socket.timeout:
            return False
        return False
