// RequestParser::Impl: the parser's internals, shared by its two source files:
// request_head_scan.cpp (the byte-level pre-scan of the head) and request_parser.cpp (the
// tokenizer and the framing rules). Private to them; workers, no Python.

#pragma once

#include <cstddef>
#include <string_view>

#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {

struct RequestParser::Impl {
  static void fail(RequestParser* r, int status, std::string_view reason) {
    if (r->error_status_ == 0) {
      r->error_status_ = status;
      r->error_reason_ = reason;
    }
  }
  static constexpr size_t kFail = std::string_view::npos;
  static size_t failed(RequestParser* r, int status, std::string_view reason) {
    fail(r, status, reason);
    return kFail;
  }
  static bool rejected(RequestParser* r, int status, std::string_view reason) {
    fail(r, status, reason);
    return false;
  }

  // Walks the line structure of the head (RFC 9112 2.2, 3, 5): CRLF line ends only, no
  // control characters, exactly two SP in the request line, no line starting with
  // whitespace (obs-fold, 5.2). Returns how many of the |n| bytes belong to the head and sets
  // *done when they end it; returns npos after recording an error.
  static size_t scan_head(RequestParser* r, const char* data, size_t n, bool* done);

  static Span span_of(const RequestParser* r, std::string_view piece) {
    return {static_cast<uint32_t>(piece.data() - r->head_.data()),
            static_cast<uint32_t>(piece.size())};
  }

  // The tokenizer and the head's rules (request_parser.cpp).
  static bool parse_lines(RequestParser* r);
  static bool parse_request_line(RequestParser* r, std::string_view line);
  static bool parse_field_line(RequestParser* r, std::string_view line);
  static bool check_target(RequestParser* r);
  static bool check_head(RequestParser* r);
};

}  // namespace aiowsgi::worker
