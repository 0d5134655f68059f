#include "worker/transport.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "worker/connection.h"
#include "worker/tls_session.h"

namespace aiowsgi::worker {
namespace {

// A TLS record's largest payload: a write of at most this is one SSL_write, all or nothing.
constexpr size_t kRecordBytes = 16384;
// The worker is single-threaded and no call below is re-entered: one buffer serves them all.
char scratch[65536];

}  // namespace

ssize_t Connection::fill() noexcept {
  if (!tls) {
    ssize_t n = recv(fd.get(), scratch, sizeof scratch, 0);
    if (n > 0) rbuf.append(scratch, static_cast<size_t>(n));
    return n;
  }
  // SSL_read gives one record at a time. Bytes left inside OpenSSL are not announced by the
  // socket's readiness, so reading goes on while OpenSSL holds any (a partial record's
  // SSL_read then reads the socket on, or says EAGAIN). Once it holds none, what follows is in
  // the socket, whose readiness announces it (level-triggered): stopping there spares the
  // read(2) that would fail with EAGAIN — one per keep-alive request, as plain recv is one.
  // Past the budget only decrypted bytes OpenSSL already holds (SSL_pending) are taken.
  size_t total = 0;
  for (;;) {
    ssize_t n = tls->read(scratch, kRecordBytes);
    if (n <= 0) {
      if (total > 0) break;  // report the bytes; the error or EOF comes again next time
      return n;
    }
    rbuf.append(scratch, static_cast<size_t>(n));
    total += static_cast<size_t>(n);
    if (tls->pending() == 0 && (total >= sizeof scratch || !tls->holds_input())) break;
  }
  return static_cast<ssize_t>(total);
}

ssize_t transport_send(Connection& conn, const iovec* iov, int iovcnt, bool more) noexcept {
  if (!conn.tls) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(std::min(iovcnt, IOV_MAX));
    return sendmsg(conn.fd.get(), &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
  }
  while (iovcnt > 0 && iov->iov_len == 0) {
    ++iov;
    --iovcnt;
  }
  if (iovcnt == 0) return 0;
  // A large first piece goes out from where it is; small pieces (a head, a chunk's size line)
  // are gathered into one record. Both depend only on |iov|, so a repeated call after EAGAIN
  // writes the same bytes, as OpenSSL requires.
  if (iov->iov_len >= kRecordBytes)
    return conn.tls->write(static_cast<const char*>(iov->iov_base), kRecordBytes);
  size_t len = 0;
  for (int i = 0; i < iovcnt && len < kRecordBytes; ++i) {
    size_t take = std::min(iov[i].iov_len, kRecordBytes - len);
    std::copy_n(static_cast<const char*>(iov[i].iov_base), take, scratch + len);
    len += take;
  }
  return conn.tls->write(scratch, len);
}

ssize_t transport_sendfile(Connection& conn, int file, off_t* offset, size_t count) noexcept {
  if (!conn.tls) return sendfile(conn.fd.get(), file, offset, count);
  if (conn.tls->kernel_sends()) {  // kTLS: the kernel encrypts, nothing is copied here
    ssize_t n = conn.tls->sendfile(file, *offset, count);
    if (n > 0) *offset += n;
    return n;
  }
  size_t done = 0;
  while (done < count) {
    const size_t want = std::min(count - done, kRecordBytes);
    ssize_t r = pread(file, scratch, want, *offset);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return done > 0 ? static_cast<ssize_t>(done) : r;  // 0: the file shrank
    ssize_t w = conn.tls->write(scratch, static_cast<size_t>(r));
    if (w <= 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    *offset += w;
    done += static_cast<size_t>(w);
  }
  return static_cast<ssize_t>(done);
}

bool wait_for_write(const Connection& conn, bool sending) noexcept {
  return conn.tls ? conn.tls->wants_write() : sending;
}

}  // namespace aiowsgi::worker
