// TlsContext: the SSL_CTX an https listener serves with ([tls] certificate, key, ca), built the
// same way by the master's config check (so --check and HUP catch a bad certificate before
// any worker loads it) and by each worker at start. OpenSSL 3; no Python, no GIL needed.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "common/result.h"

namespace aiowsgi {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct TlsFiles {
  std::string certificate;  // PEM: the server certificate, then its chain
  std::string key;          // PEM private key matching the certificate
  std::string ca;           // PEM CA bundle; non-empty: client certificates are required
};

// TLS 1.2 and 1.3 only; for 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305 (kTls12Ciphers);
// no compression, no renegotiation; ALPN answers http/1.1. A Config status names the file
// and OpenSSL's reason when a file is unreadable or the key does not match the certificate.
Result<SslCtxPtr> make_tls_context(const TlsFiles& files);

// "subject CN=..., expires 2027-01-01 00:00:00 GMT (365 days)" for the log; *days_left is
// negative once the certificate has expired.
std::string tls_certificate_summary(SSL_CTX* ctx, int* days_left);

// Whether this kernel can take over a TLS session's record layer (kTLS: the "tls" TCP upper
// layer protocol), so sendfile can send static files over TLS without copying them through
// the worker. False with the reason ("TCP_ULP tls: No such file or directory") when not.
bool kernel_tls_available(std::string* why);

inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace aiowsgi
