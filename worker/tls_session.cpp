#include "worker/tls_session.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

namespace aiowsgi::worker {

std::unique_ptr<TlsSession> TlsSession::accept(SSL_CTX* ctx, int fd) noexcept {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl.get());
  return std::unique_ptr<TlsSession>(new (std::nothrow) TlsSession(std::move(ssl)));
}

ssize_t TlsSession::fail(int rc) noexcept {
  const int saved = errno;
  switch (SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ:
      want_write_ = false;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      want_write_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      ERR_clear_error();
      errno = saved != 0 && saved != EAGAIN ? saved : ECONNRESET;
      return -1;
    default: {
      failed_ = true;
      // Garbage, an old protocol version, a refused client certificate: the client's
      // problem, logged for whoever debugs it, never the worker's.
      char reason[256] = "";
      if (unsigned long e = ERR_peek_error()) ERR_error_string_n(e, reason, sizeof reason);
      ERR_clear_error();
      spdlog::debug("TLS: connection closed: {}", reason);
      errno = ECONNRESET;
      return -1;
    }
  }
}

ssize_t TlsSession::read(char* buf, size_t len) noexcept {
  if (failed_) {
    errno = ECONNRESET;
    return -1;
  }
  ERR_clear_error();  // SSL_get_error judges by the queue: start it empty
  int rc = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(len, 1 << 30)));
  if (rc > 0) return rc;
  return fail(rc);
}

ssize_t TlsSession::write(const char* buf, size_t len) noexcept {
  if (failed_) {
    errno = EPIPE;
    return -1;
  }
  if (len == 0) return 0;
  ERR_clear_error();
  int rc = SSL_write(ssl_.get(), buf, static_cast<int>(std::min<size_t>(len, 1 << 30)));
  if (rc > 0) return rc;
  ssize_t r = fail(rc);
  if (r == 0) {  // the peer closed: writing is over
    errno = EPIPE;
    return -1;
  }
  return r;
}

bool TlsSession::kernel_sends() const noexcept {
  return !failed_ && BIO_get_ktls_send(SSL_get_wbio(ssl_.get())) > 0;
}

ssize_t TlsSession::sendfile(int file, off_t offset, size_t count) noexcept {
  if (failed_) {
    errno = EPIPE;
    return -1;
  }
  ERR_clear_error();
  ossl_ssize_t rc = SSL_sendfile(ssl_.get(), file, offset, count, 0);
  if (rc > 0) return rc;
  ssize_t r = fail(static_cast<int>(rc));
  if (r == 0) errno = EPIPE;
  return r == 0 ? -1 : r;
}

void TlsSession::close_notify() noexcept {
  if (failed_ || closed_ || !SSL_is_init_finished(ssl_.get())) return;
  closed_ = true;
  ERR_clear_error();
  (void)SSL_shutdown(ssl_.get());  // non-blocking: what fits in the socket buffer goes
  ERR_clear_error();
}

const TlsPeer* TlsSession::peer() noexcept {
  if (peer_done_) return peer_.get();
  if (!SSL_is_init_finished(ssl_.get())) return nullptr;
  peer_done_ = true;
  X509* cert = SSL_get0_peer_certificate(ssl_.get());
  // Only a verified one: with [tls] ca the handshake already failed otherwise.
  if (cert == nullptr || SSL_get_verify_result(ssl_.get()) != X509_V_OK) return nullptr;
  auto p = std::unique_ptr<TlsPeer>(new (std::nothrow) TlsPeer);
  BIO* bio = BIO_new(BIO_s_mem());
  if (!p || bio == nullptr) {
    BIO_free(bio);
    return nullptr;
  }
  char* data = nullptr;
  if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) p->subject_dn.assign(data, static_cast<size_t>(n));
  }
  (void)BIO_reset(bio);
  if (PEM_write_bio_X509(bio, cert) == 1) {
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) p->cert_pem.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  ERR_clear_error();
  peer_ = std::move(p);
  return peer_.get();
}

}  // namespace aiowsgi::worker
