// libFuzzer target: RequestParser over untrusted bytes, as a connection feeds it (request
// heads, Content-Length and chunked bodies, pipelined requests). Built only by the fuzz
// configuration (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run.
// Input: byte 0 picks the read size, byte 1 the limits, the rest is what the client sent.
// Invariants checked beyond "no crash":
//   - a call never consumes more than it was given; kIncomplete consumes all of it;
//   - feeding the stream in one piece or in small pieces gives the same requests, errors and
//     consumed byte counts (the parser's state is independent of how bytes arrive);
//   - a parsed head round-trips: method, target, version and headers, written out again,
//     parse to the same values; path, query and authority are pieces of the target;
//   - no head has more fields than max_header_fields;
//   - errors carry one of the documented statuses; bodies respect Content-Length and
//     max_body_bytes; every head respects max_header_bytes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/request_parser.h"

namespace {

using aiowsgi::fuzz::Piece;
using aiowsgi::worker::RequestParser;
using Result = RequestParser::Result;

constexpr size_t kMaxMessages = 8;  // pipelined requests parsed per input

struct Parsed {
  Result result = Result::kIncomplete;
  size_t consumed = 0;  // stream bytes that belong to this request
  int error_status = 0;
  std::string method, target, path, query, authority;
  int major = 0, minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = false, has_body = false, chunked = false, expect_continue = false;
  bool upgrade = false;
  std::optional<uint64_t> content_length;
  std::string body;
  bool operator==(const Parsed&) const = default;
};

void capture_head(const RequestParser& p, Parsed* out) {
  out->method = p.method();
  out->target = p.target();
  out->path = p.path();
  out->query = p.query();
  out->authority = p.authority();
  out->major = p.http_major();
  out->minor = p.http_minor();
  out->headers.clear();
  for (size_t i = 0; i < p.header_count(); ++i) {
    out->headers.emplace_back(p.header_name(i), p.header_value(i));
  }
  out->keep_alive = p.keep_alive();
  out->has_body = p.has_body();
  out->chunked = p.chunked();
  out->expect_continue = p.expect_continue();
  out->upgrade = p.upgrade();
  out->content_length = p.content_length();
}

// Parses the requests in |stream| as a connection would, |piece| bytes per read; bytes a
// request did not consume stay buffered for the next one.
std::vector<Parsed> parse_stream(std::string_view stream, size_t piece,
                                 RequestParser::Limits limits) {
  RequestParser p(limits);
  std::vector<Parsed> out;
  Parsed cur;
  bool head_done = false;
  size_t start = 0;     // stream offset of the current request
  std::string pending;  // received but not yet consumed
  size_t received = 0;  // stream bytes read so far
  while (out.size() < kMaxMessages) {
    if (pending.empty()) {
      if (received == stream.size()) break;
      const size_t n = std::min(piece, stream.size() - received);
      pending.assign(stream.substr(received, n));
      received += n;
    }
    const Piece buf(pending);  // exactly sized: ASan sees any over-read
    size_t c = 0;
    Result r = head_done ? p.feed_body(buf.data(), buf.size(), &c, &cur.body)
                         : p.feed_head(buf.data(), buf.size(), &c);
    FUZZ_CHECK(c <= buf.size());
    pending.erase(0, c);
    if (r == Result::kIncomplete) {
      FUZZ_CHECK(pending.empty());
      continue;
    }
    cur.result = r;
    if (r == Result::kError) {
      cur.error_status = p.error_status();
      FUZZ_CHECK(!p.error_reason().empty());
      const int s = cur.error_status;
      FUZZ_CHECK(s == 400 || s == 413 || s == 431 || s == 501 || s == 505);
      cur.consumed = received - pending.size() - start;
      out.push_back(std::move(cur));
      return out;  // the connection is closed after an error
    }
    if (r == Result::kHeadComplete) {
      head_done = true;
      capture_head(p, &cur);
      FUZZ_CHECK(p.message_complete() == !p.has_body());
      FUZZ_CHECK(received - pending.size() - start <= limits.max_header_bytes);
      if (p.has_body()) {
        cur.result = Result::kIncomplete;
        continue;
      }
      cur.result = Result::kMessageComplete;
    }
    FUZZ_CHECK(p.message_complete());
    cur.consumed = received - pending.size() - start;
    start += cur.consumed;
    out.push_back(std::move(cur));
    cur = Parsed{};
    head_done = false;
    p.reset();
  }
  if (head_done || cur.result != Result::kIncomplete) out.push_back(std::move(cur));
  return out;
}

bool is_tchar(unsigned char c) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         kExtra.find(static_cast<char>(c)) != std::string_view::npos;
}

// What a successfully parsed head must look like, and that writing it out again parses to the
// same values.
void check_head(const Parsed& h, RequestParser::Limits limits) {
  FUZZ_CHECK(!h.method.empty());
  for (unsigned char c : h.method) FUZZ_CHECK(is_tchar(c));
  FUZZ_CHECK(!h.target.empty());
  for (unsigned char c : h.target) FUZZ_CHECK(c > 0x20 && c != 0x7f);
  FUZZ_CHECK(h.major == 1 && (h.minor == 0 || h.minor == 1));
  // path and query are the target's pieces: target = [scheme "://" authority] path
  // ["?" query ["#" ...]], the path being "/" when an absolute-form target has none.
  std::string_view rest = h.target;
  if (!h.authority.empty()) {
    const size_t at = rest.find("://");
    FUZZ_CHECK(at != std::string_view::npos);
    rest.remove_prefix(at + 3);
    FUZZ_CHECK(rest.substr(0, h.authority.size()) == h.authority);
    FUZZ_CHECK(h.authority.find('@') == std::string::npos);
    rest.remove_prefix(h.authority.size());
    FUZZ_CHECK(rest.empty() || rest[0] == '/' || rest[0] == '?' || rest[0] == '#');
  } else if (h.method != "CONNECT") {
    FUZZ_CHECK(h.target[0] == '/' || (h.target == "*" && h.method == "OPTIONS"));
  }
  const bool implied_root =
      !h.authority.empty() && h.path == "/" && (rest.empty() || rest[0] != '/');
  const size_t path_len = implied_root ? 0 : h.path.size();
  if (!implied_root) FUZZ_CHECK(rest.compare(0, h.path.size(), h.path) == 0);
  if (!h.query.empty()) {
    FUZZ_CHECK(rest.size() > path_len && rest[path_len] == '?');
    FUZZ_CHECK(rest.compare(path_len + 1, h.query.size(), h.query) == 0);
  }
  if (limits.max_header_fields != 0) FUZZ_CHECK(h.headers.size() <= limits.max_header_fields);
  // RFC 9110 10.1.1: the expectation only exists in HTTP/1.1.
  if (h.expect_continue) FUZZ_CHECK(h.minor == 1);
  for (const auto& [name, value] : h.headers) {
    FUZZ_CHECK(!name.empty());
    for (unsigned char c : name) FUZZ_CHECK(is_tchar(c));
    for (unsigned char c : value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    if (!value.empty()) {
      FUZZ_CHECK(value.front() != ' ' && value.front() != '\t');
      FUZZ_CHECK(value.back() != ' ' && value.back() != '\t');
    }
  }
  FUZZ_CHECK(!(h.chunked && h.content_length.has_value()));

  std::string again = h.method + " " + h.target + " HTTP/" + std::to_string(h.major) + "." +
                      std::to_string(h.minor) + "\r\n";
  for (const auto& [name, value] : h.headers) again += name + ": " + value + "\r\n";
  again += "\r\n";
  RequestParser::Limits roomy = limits;
  roomy.max_header_bytes = again.size() + 1;  // the original may have had extra whitespace
  RequestParser p(roomy);
  const Piece buf(again);
  size_t c = 0;
  const Result r = p.feed_head(buf.data(), buf.size(), &c);
  if (r == Result::kError) {
    std::fprintf(stderr, "round trip failed (%d %.*s) for:\n%s\n", p.error_status(),
                 static_cast<int>(p.error_reason().size()), p.error_reason().data(), again.c_str());
  }
  FUZZ_CHECK(r == Result::kHeadComplete);
  FUZZ_CHECK(c == again.size());
  Parsed back;
  capture_head(p, &back);
  FUZZ_CHECK(back.method == h.method && back.target == h.target && back.path == h.path &&
             back.query == h.query && back.authority == h.authority && back.major == h.major &&
             back.minor == h.minor);
  FUZZ_CHECK(back.headers == h.headers);
  FUZZ_CHECK(back.keep_alive == h.keep_alive && back.chunked == h.chunked &&
             back.content_length == h.content_length && back.upgrade == h.upgrade &&
             back.expect_continue == h.expect_continue && back.has_body == h.has_body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t piece = aiowsgi::fuzz::piece_size(data[0]);
  RequestParser::Limits limits;
  if (data[1] & 1) limits.max_header_bytes = 256;
  if (data[1] & 2) limits.max_body_bytes = 16;
  if (data[1] & 4) limits.max_header_fields = 3;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  const std::vector<Parsed> whole = parse_stream(stream, stream.size() + 1, limits);
  const std::vector<Parsed> split = parse_stream(stream, piece, limits);
  // Where an error is noticed may depend on the read size (bytes before it were consumed by
  // earlier calls), so error entries compare by status only.
  auto normalized = [](std::vector<Parsed> v) {
    for (Parsed& m : v) {
      if (m.result == Result::kError) m.consumed = 0;
    }
    return v;
  };
  FUZZ_CHECK(normalized(whole) == normalized(split));

  size_t total = 0;
  for (const Parsed& m : whole) {
    total += m.consumed;
    FUZZ_CHECK(total <= stream.size());
    if (m.result == Result::kError) continue;
    if (!m.method.empty()) check_head(m, limits);
    if (m.result == Result::kMessageComplete) {
      if (m.content_length) FUZZ_CHECK(m.body.size() == *m.content_length);
      if (!m.has_body) FUZZ_CHECK(m.body.empty());
    }
    if (limits.max_body_bytes != 0) FUZZ_CHECK(m.body.size() <= limits.max_body_bytes);
    FUZZ_CHECK(m.body.size() <= stream.size());
  }
  return 0;
}
