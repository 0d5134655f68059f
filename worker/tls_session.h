// TlsSession: the TLS state of one client connection on an https:// listener — the
// handshake and the record layer over the connection's non-blocking socket, driven from the
// loop (handshake, request heads) and from the serving core (bodies, responses) alike,
// through worker/transport.h. Workers only, on the loop's thread; no Python, no GIL needed.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

namespace aiowsgi::worker {

struct SslFree {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// What the environ says of a verified client certificate ([tls] ca), nginx's names.
struct TlsPeer {
  std::string subject_dn;  // SSL_CLIENT_S_DN, RFC 2253 ("CN=alice,O=Example")
  std::string cert_pem;    // SSL_CLIENT_CERT
};

class TlsSession {
 public:
  // A server-side session on |fd| (not owned); null when OpenSSL cannot make one.
  static std::unique_ptr<TlsSession> accept(SSL_CTX* ctx, int fd) noexcept;

  // Like recv(2) and send(2): > 0 bytes, 0 at the peer's close (reads only), -1 with errno:
  // EAGAIN when the socket must become ready first (wants_write() says in which direction:
  // a read may have to send, as the handshake does), ECONNRESET or the socket's own error
  // when the session failed (garbage, a refused handshake, a client certificate not
  // verified). A write that returned EAGAIN must be repeated with the same bytes.
  ssize_t read(char* buf, size_t len) noexcept;
  ssize_t write(const char* buf, size_t len) noexcept;
  bool wants_write() const { return want_write_; }
  // With kTLS on this connection's sending side ([tls] and a kernel that offers it),
  // sendfile() sends |count| bytes of |file| from |offset| as records the kernel makes:
  // like write(), bytes sent or -1 with errno. Only when kernel_sends().
  bool kernel_sends() const noexcept;
  ssize_t sendfile(int file, off_t offset, size_t count) noexcept;
  // Decrypted bytes OpenSSL holds that read() would return without the socket.
  size_t pending() const { return static_cast<size_t>(SSL_pending(ssl_.get())); }
  // Any bytes OpenSSL holds, decrypted or not (a record read in part).
  bool holds_input() const { return SSL_has_pending(ssl_.get()) == 1; }

  // Sends close_notify once, best effort, without waiting; not after a failure.
  void close_notify() noexcept;

  // The verified client certificate, null without one; computed once.
  const TlsPeer* peer() noexcept;

 private:
  explicit TlsSession(SslPtr ssl) : ssl_(std::move(ssl)) {}
  ssize_t fail(int rc) noexcept;

  SslPtr ssl_;
  bool want_write_ = false;
  bool failed_ = false;  // a fatal error: OpenSSL forbids using the session further
  bool closed_ = false;  // close_notify sent
  bool peer_done_ = false;
  std::unique_ptr<TlsPeer> peer_;
};

}  // namespace aiowsgi::worker
