#include "common/tls_tickets.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>

namespace aiowsgi {
namespace {

constexpr size_t kSecretBytes = 32;

// Written by init_ticket_secret() in the master before it forks; after that only read.
unsigned char g_secret[kSecretBytes];
bool g_secret_set = false;

struct TicketKey {
  int64_t period = -1;  // time(nullptr) / rotation this key belongs to; -1: none yet
  unsigned char name[16];
  unsigned char aes[32];   // AES-256-CBC, the cipher RFC 5077's recommended ticket uses
  unsigned char hmac[32];  // HMAC-SHA256 key
};

// The periods a worker can be asked about (the previous, the current and, for a peer whose
// clock already turned, the next) land in different slots. Ticket callbacks run on the
// worker's one thread.
TicketKey g_keys[3];
int64_t g_rotation = 3600;  // [tls] ticket_key_rotation

// Both halves of a key from the secret and the period: HMAC-SHA512 under the secret, with a
// label per purpose, so every worker derives the same key without being told it.
void derive(int64_t period, TicketKey* k) {
  unsigned char msg[32];
  auto mac = [&](std::string_view label, unsigned char* out) {
    std::memcpy(msg, label.data(), label.size());
    for (int i = 0; i < 8; ++i)
      msg[label.size() + i] = static_cast<unsigned char>(period >> (56 - 8 * i));
    unsigned int len = 0;
    return HMAC(EVP_sha512(), g_secret, kSecretBytes, msg, label.size() + 8, out, &len) != nullptr;
  };
  unsigned char keys[64], name[64];
  if (!mac("aiowsgi ticket keys", keys) || !mac("aiowsgi ticket name", name)) {
    ERR_clear_error();
    return;  // k->period stays stale: the callback refuses tickets rather than use it
  }
  std::memcpy(k->aes, keys, 32);
  std::memcpy(k->hmac, keys + 32, 32);
  std::memcpy(k->name, name, 16);
  k->period = period;
}

const TicketKey* key_for(int64_t period) {
  TicketKey& k = g_keys[period % 3];
  if (k.period != period) derive(period, &k);
  return k.period == period ? &k : nullptr;
}

// OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb): 1 to use the key,
// 2 to accept the ticket and issue a fresh one (it was made under the previous key), 0 to
// ignore it (a full handshake follows), -1 on an internal error.
int on_ticket(SSL*, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
              EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* hmac, int enc) {
  const int64_t now = static_cast<int64_t>(time(nullptr)) / g_rotation;
  const TicketKey* k = nullptr;
  int verdict = 1;
  if (enc) {
    k = key_for(now);
    if (k == nullptr || RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(key_name, k->name, 16);
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1) return -1;
  } else {
    for (int64_t p : {now, now - 1, now + 1}) {
      const TicketKey* c = key_for(p);
      if (c != nullptr && std::memcmp(c->name, key_name, 16) == 0) {
        k = c;
        verdict = p == now ? 1 : 2;
        break;
      }
    }
    if (k == nullptr) return 0;  // too old, or another server's: a full handshake
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k->aes, iv) != 1) return -1;
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k->hmac),
                                        sizeof k->hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(hmac, params) != 1) return -1;
  return verdict;
}

}  // namespace

Status init_ticket_secret() {
  size_t got = 0;
  while (got < kSecretBytes) {
    ssize_t n = getrandom(g_secret + got, kSecretBytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Io("getrandom", errno);
    got += static_cast<size_t>(n);
  }
  g_secret_set = true;
  return Status::Ok();
}

bool use_shared_tickets(SSL_CTX* ctx, int64_t rotation_seconds) {
  // A process the master did not fork (a unit test) keeps tickets to itself.
  if (!g_secret_set && !init_ticket_secret().ok()) return false;
  g_rotation = rotation_seconds > 0 ? rotation_seconds : 1;
  for (TicketKey& k : g_keys) k.period = -1;
  // Tickets only: a session cache would be this worker's alone.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(ctx, static_cast<long>(g_rotation));
  if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket) != 1) {
    ERR_clear_error();
    return false;
  }
  return true;
}

}  // namespace aiowsgi
