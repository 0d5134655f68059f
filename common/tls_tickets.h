// Session tickets every worker accepts. The master makes a random secret once, before it forks
// anything; every worker (and the preload process, and every later generation) inherits it
// with the master's memory. Each worker derives the ticket keys from it and the wall clock: a
// new key every [tls] ticket_key_rotation seconds, the previous one still accepted (and its
// tickets renewed). So a client resumes its session on whichever worker it reaches, across
// HUP reloads too, and no key lives longer than two rotation periods. Nothing travels over
// the control pipes and no worker keeps state about sessions (the session cache is off).
// A binary upgrade (USR2) starts with a new secret: its clients make one full handshake.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>

#include "common/status.h"

namespace aiowsgi {

// The master, at start, before any fork: fills the process's secret from getrandom(2).
Status init_ticket_secret();

// A worker: |ctx| issues and accepts tickets under the shared keys, rotated every
// |rotation_seconds|; a ticket's lifetime hint is one period. False (with OpenSSL's queue
// cleared) when OpenSSL refuses the callback: the worker then serves without tickets.
bool use_shared_tickets(SSL_CTX* ctx, int64_t rotation_seconds);

}  // namespace aiowsgi
