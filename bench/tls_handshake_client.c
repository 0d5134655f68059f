/* Full TLS handshakes against an HTTPS server: CONCURRENCY processes, each opening a new
 * connection, doing a full handshake (no session resumption: no session cache, no tickets, a
 * new SSL object every time), sending one GET with "Connection: close" and reading the
 * response to the server's close, again and again for DURATION seconds.
 *
 * Why not wrk: wrk reconnects with the same SSL object after SSL_clear, which keeps the
 * session, so its "Connection: close" run resumes sessions instead of making full handshakes.
 *
 * Prints one line like bench/wrk_summary.lua ("WRK_JSON {...}") so bench/run reads both the
 * same way, plus "resumed" (handshakes the server resumed: should be 0).
 *
 * Build: cc -O2 -o tls_handshake_client tls_handshake_client.c -lssl -lcrypto
 * Usage: tls_handshake_client HOST PORT PATH CONCURRENCY DURATION_S [tls1.2|tls1.3]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Latency samples per process (µs), in memory shared with the parent; pages are touched only
 * as samples are written, so the generous cap costs nothing. */
#define MAX_SAMPLES (1 << 21)

struct child_result {
  uint64_t requests, bytes, resumed;
  uint64_t connect_errors, read_errors, write_errors, status_errors;
  uint64_t samples;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

/* One connection, one request, counted in |r|: a 200 response read to the server's close is a
 * request (and a latency sample), anything else an error of its kind. */
static void one(SSL_CTX* ctx, const struct sockaddr_in* addr, const char* req, size_t req_len,
                struct child_result* r, uint32_t* samples) {
  const double t0 = now_s();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr*)addr, sizeof *addr) != 0) {
    r->connect_errors++;
    if (fd >= 0) close(fd);
    usleep(1000);
    return;
  }
  int one_ = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
  /* A server that stops answering makes errors, not a hung client. */
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    r->connect_errors++;
    goto out;
  }
  if (SSL_session_reused(ssl)) r->resumed++;
  if (SSL_write(ssl, req, (int)req_len) != (int)req_len) {
    r->write_errors++;
    goto out;
  }
  char buf[16384];
  size_t got = 0;
  int ok_status = 0;
  for (;;) {
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) break; /* close_notify or EOF: the response is complete (Connection: close) */
    if (got == 0) ok_status = n >= 12 && memcmp(buf + 8, " 200", 4) == 0;
    got += (size_t)n;
  }
  if (got == 0) {
    r->read_errors++;
    goto out;
  }
  r->bytes += got;
  if (!ok_status) {
    r->status_errors++;
    goto out;
  }
  r->requests++;
  if (r->samples < MAX_SAMPLES) samples[r->samples++] = (uint32_t)((now_s() - t0) * 1e6);
out:
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s HOST PORT PATH CONCURRENCY DURATION_S [tls1.2|tls1.3]\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  const int port = atoi(argv[2]);
  const char* path = argv[3];
  const int conc = atoi(argv[4]);
  const double duration = atof(argv[5]);
  const char* version = argc > 6 ? argv[6] : "";
  if (conc < 1 || duration <= 0) return 2;

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "HOST must be an IPv4 address\n");
    return 2;
  }
  char req[1024];
  int req_len =
      snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path,
               host, port);

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  /* No resumption of any kind: every connection is a full handshake. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (strcmp(version, "tls1.2") == 0) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  if (strcmp(version, "tls1.3") == 0) SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  signal(SIGPIPE, SIG_IGN);

  struct child_result* results =
      mmap(NULL, sizeof *results * conc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  uint32_t* samples =
      mmap(NULL, (size_t)MAX_SAMPLES * sizeof(uint32_t) * conc, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (results == MAP_FAILED || samples == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  memset(results, 0, sizeof *results * conc);
  const double start = now_s();
  const double end = start + duration;
  for (int i = 0; i < conc; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      while (now_s() < end)
        one(ctx, &addr, req, (size_t)req_len, &results[i], samples + (size_t)MAX_SAMPLES * i);
      _exit(0);
    }
  }
  while (wait(NULL) > 0 || errno == EINTR) {
  }
  const double elapsed = now_s() - start;

  struct child_result t;
  memset(&t, 0, sizeof t);
  uint64_t n = 0;
  for (int i = 0; i < conc; ++i) {
    t.requests += results[i].requests;
    t.bytes += results[i].bytes;
    t.resumed += results[i].resumed;
    t.connect_errors += results[i].connect_errors;
    t.read_errors += results[i].read_errors;
    t.write_errors += results[i].write_errors;
    t.status_errors += results[i].status_errors;
    /* Gather every process's samples at the front for one sort. */
    memmove(samples + n, samples + (size_t)MAX_SAMPLES * i, results[i].samples * sizeof(uint32_t));
    n += results[i].samples;
  }
  qsort(samples, n, sizeof(uint32_t), cmp_u32);
  uint32_t p50 = n ? samples[n / 2] : 0, p99 = n ? samples[(n * 99) / 100] : 0;
  uint32_t max = n ? samples[n - 1] : 0;
  printf(
      "WRK_JSON {\"requests\": %llu, \"duration_us\": %llu, \"bytes\": %llu, "
      "\"p50_us\": %u, \"p99_us\": %u, \"max_us\": %u, \"connect_errors\": %llu, "
      "\"read_errors\": %llu, \"write_errors\": %llu, \"status_errors\": %llu, "
      "\"timeouts\": 0, \"resumed\": %llu}\n",
      (unsigned long long)t.requests, (unsigned long long)(elapsed * 1e6),
      (unsigned long long)t.bytes, p50, p99, max, (unsigned long long)t.connect_errors,
      (unsigned long long)t.read_errors, (unsigned long long)t.write_errors,
      (unsigned long long)t.status_errors, (unsigned long long)t.resumed);
  return 0;
}
