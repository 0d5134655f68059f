// Transport: the bytes of a client connection, plain or TLS (an https:// listener's
// Connection carries a TlsSession). Every read and write of a client socket in the worker
// goes through these, so TLS's "want read" / "want write" map onto the same readiness waits
// as plain I/O. Workers only, on the loop's thread; no Python.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace aiowsgi::worker {

struct Connection;

// Like sendmsg(2) with MSG_NOSIGNAL: bytes written from the front of |iov| (over TLS at most
// one record, 16 KiB, per call), or -1 with errno (EAGAIN: wait, see wait_for_write). |more|
// hints that more bytes follow at once (MSG_MORE; plain sockets only).
ssize_t transport_send(Connection& conn, const iovec* iov, int iovcnt, bool more = false) noexcept;

// Like sendfile(2) from |file| at *offset, advancing it. Over TLS with kTLS the kernel sends
// the file (SSL_sendfile); without it the file is read and written as records: the same
// bytes are read again when a write is repeated.
ssize_t transport_sendfile(Connection& conn, int file, off_t* offset, size_t count) noexcept;

// After EAGAIN from a transport call: true when the socket must become writable before the
// call can go on, false when readable. Plain sockets wait in the call's own direction
// (|sending|); TLS may need the other one (a handshake message or a key update to send).
bool wait_for_write(const Connection& conn, bool sending) noexcept;

}  // namespace aiowsgi::worker
