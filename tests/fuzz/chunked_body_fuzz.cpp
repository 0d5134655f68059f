// libFuzzer target: the request body decoder (RequestParser::feed_body) over untrusted body
// bytes, after a fixed head that announces a chunked body (or a Content-Length one).
// Built only by the fuzz configuration (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run.
// Input: byte 0 picks the read size, byte 1 the framing and limit, the rest is the body.
// Invariants checked beyond "no crash":
//   - a call never consumes more than it was given; kIncomplete consumes all of it;
//   - one piece or small pieces give the same result, decoded body and consumed count;
//   - the decoded body is never longer than the bytes consumed, nor over max_body_bytes;
//   - Content-Length framing yields exactly the first Content-Length bytes;
//   - a decoded chunked body, re-encoded as chunks of other sizes, decodes to itself.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/request_parser.h"

namespace {

using aiowsgi::fuzz::Piece;
using aiowsgi::worker::RequestParser;
using Result = RequestParser::Result;

struct Decoded {
  Result result = Result::kIncomplete;
  int error_status = 0;
  size_t consumed = 0;
  std::string body;
  bool operator==(const Decoded&) const = default;
};

// Starts a parser on |head| (which must be accepted) and feeds |body| |piece| bytes at a time.
Decoded decode(std::string_view head, std::string_view body, size_t piece,
               RequestParser::Limits limits) {
  RequestParser p(limits);
  const Piece h(head);
  size_t c = 0;
  FUZZ_CHECK(p.feed_head(h.data(), h.size(), &c) == Result::kHeadComplete);
  FUZZ_CHECK(c == head.size());
  Decoded out;
  size_t pos = 0;
  while (pos < body.size()) {
    const Piece buf(body.substr(pos, piece));
    Result r = p.feed_body(buf.data(), buf.size(), &c, &out.body);
    FUZZ_CHECK(c <= buf.size());
    pos += c;
    out.result = r;
    if (r == Result::kIncomplete) {
      FUZZ_CHECK(c == buf.size());
      continue;
    }
    if (r == Result::kError) {
      out.error_status = p.error_status();
      FUZZ_CHECK(out.error_status == 400 || out.error_status == 413 || out.error_status == 501);
      break;
    }
    FUZZ_CHECK(r == Result::kMessageComplete);
    FUZZ_CHECK(p.message_complete());
    // Complete is final: more bytes belong to the next request and are not consumed.
    const Piece more("X");
    size_t c2 = 0;
    FUZZ_CHECK(p.feed_body(more.data(), more.size(), &c2, &out.body) == Result::kMessageComplete);
    FUZZ_CHECK(c2 == 0);
    break;
  }
  out.consumed = pos;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t piece = aiowsgi::fuzz::piece_size(data[0]);
  const bool content_length = data[1] & 1;
  RequestParser::Limits limits;
  if (data[1] & 2) limits.max_body_bytes = 64;
  const size_t cl = data[2];
  const std::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);

  const std::string head =
      content_length
          ? "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(cl) + "\r\n\r\n"
          : std::string("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  if (content_length && cl == 0) return 0;  // no body: feed_body is never called
  // A Content-Length over the limit is refused with the head (request_parser_fuzz covers it).
  if (content_length && limits.max_body_bytes != 0 && cl > limits.max_body_bytes) return 0;

  const Decoded whole = decode(head, body, body.size() + 1, limits);
  const Decoded split = decode(head, body, piece, limits);
  if (whole.result == Result::kError) {
    // Where an error is noticed may depend on the read size; the verdict may not.
    FUZZ_CHECK(split.result == Result::kError && split.error_status == whole.error_status);
  } else {
    FUZZ_CHECK(whole == split);
  }
  FUZZ_CHECK(whole.consumed <= body.size());
  FUZZ_CHECK(whole.body.size() <= whole.consumed || whole.result == Result::kError);
  if (limits.max_body_bytes != 0) FUZZ_CHECK(whole.body.size() <= limits.max_body_bytes);

  if (content_length) {
    FUZZ_CHECK(whole.result != Result::kError);
    FUZZ_CHECK(whole.body == body.substr(0, cl));
    FUZZ_CHECK(whole.consumed == std::min(cl, body.size()));
    FUZZ_CHECK((whole.result == Result::kMessageComplete) == (body.size() >= cl));
    return 0;
  }

  if (whole.result != Result::kMessageComplete) return 0;
  // Round trip: the decoded body in chunks of another size (from byte 0), then the last chunk.
  std::string again;
  const size_t step = piece;
  for (size_t off = 0; off < whole.body.size(); off += step) {
    const size_t n = std::min(step, whole.body.size() - off);
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    again += size_line;
    again.append(whole.body, off, n);
    again += "\r\n";
  }
  again += "0\r\n\r\n";
  const Decoded back = decode(head, again, again.size() + 1, limits);
  FUZZ_CHECK(back.result == Result::kMessageComplete);
  FUZZ_CHECK(back.body == whole.body);
  FUZZ_CHECK(back.consumed == again.size());
  return 0;
}
