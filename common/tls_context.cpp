#include "common/tls_context.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace aiowsgi {
namespace {

// OpenSSL's queued reasons, oldest first, and the queue left empty for the next caller.
std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status failed(const std::string& what) { return Status::Config(what + ": " + openssl_reason()); }

// Checked up front so the common mistakes get a plain message, not OpenSSL's "system lib".
Status readable(const char* key, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return Status::Config(std::string("[tls] ") + key + " " + path + ": " + std::strerror(errno));
  }
  std::fclose(f);
  return Status::Ok();
}

// ALPN: this server speaks HTTP/1.1 only. A client offering only h2 gets no ALPN answer and
// may go on with HTTP/1.1 or give up, as it would with nginx without http2.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kHttp11, sizeof kHttp11, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<SslCtxPtr> make_tls_context(const TlsFiles& files) {
  ERR_clear_error();
  if (Status s = readable("certificate", files.certificate); !s.ok()) return s;
  if (Status s = readable("key", files.key); !s.ok()) return s;
  if (!files.ca.empty()) {
    if (Status s = readable("ca", files.ca); !s.ok()) return s;
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return failed("[tls] cannot create a TLS context");
  SSL_CTX* c = ctx.get();
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1)
    return failed("[tls] protocol or cipher setup");
  // A client that closes without close_notify is an EOF, as with plain HTTP: bodies are framed
  // by HTTP itself, so a truncation cannot pass for a complete request.
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Writes retry from the response's own buffers, which move between tries (an iovec
  // advanced, a file slice read again), and a record written is progress to report.
  SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(c, files.certificate.c_str()) != 1)
    return failed("[tls] certificate " + files.certificate);
  const std::string mismatch =
      "[tls] key " + files.key + " does not match certificate " + files.certificate;
  if (SSL_CTX_use_PrivateKey_file(c, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL compares the key with the certificate already here.
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return Status::Config(mismatch);
    }
    return failed("[tls] key " + files.key);
  }
  if (SSL_CTX_check_private_key(c) != 1) return failed(mismatch);
  if (!files.ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, files.ca.c_str(), nullptr) != 1)
      return failed("[tls] ca " + files.ca);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str());
    if (names == nullptr) return failed("[tls] ca " + files.ca + " holds no certificate");
    SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Resumed sessions must carry this id, or OpenSSL refuses them when client certificates are
  // verified. Tickets are per worker for now: a client resuming on another worker gets a full
  // handshake.
  static const unsigned char kSessionContext[] = "aiowsgi";
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
  return Result<SslCtxPtr>::ok(std::move(ctx));
}

std::string tls_certificate_summary(SSL_CTX* ctx, int* days_left) {
  *days_left = 0;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return "no certificate";
  std::string out = "subject ";
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr) {
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    BIO_puts(bio, ", expires ");
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.append(data, static_cast<size_t>(n));
    BIO_free(bio);
  }
  int days = 0, secs = 0;
  if (ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) == 1) {
    *days_left = days;
    out += " (" + std::to_string(days) + " days)";
  }
  return out;
}

bool kernel_tls_available(std::string* why) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  // The kernel finds (or loads) the upper layer first and only then sees that the socket is
  // not connected: ENOTCONN means "tls" exists, ENOENT that it does not.
  int rc = setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3);
  int err = errno;
  close(fd);
  if (rc == 0 || err == ENOTCONN) return true;
  *why = std::string("TCP_ULP tls: ") + std::strerror(err);
  return false;
}

}  // namespace aiowsgi
