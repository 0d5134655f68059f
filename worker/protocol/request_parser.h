// RequestParser: incremental HTTP/1.1 request parser for one connection (RFC 9112), with the
// limits and the strictness the server needs. Used in workers, on the loop's greenlet or in a
// core; no Python, no allocation in the steady state (buffers keep their capacity across
// requests on a keep-alive connection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/protocol/chunked_decoder.h"

namespace aiowsgi::worker {

class RequestParser {
 public:
  struct Limits {
    size_t max_header_bytes = 65536;  // request line + headers + blank line
    uint64_t max_body_bytes = 0;      // decoded body bytes; 0 = unlimited
    size_t max_header_fields = 100;   // header field lines (trailers excluded); 0 = unlimited
  };
  enum class Result { kIncomplete, kHeadComplete, kMessageComplete, kError };

  explicit RequestParser(Limits limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Makes the parser ready for the next request on the same connection.
  void reset();

  // Feeds bytes of a request head. Never consumes past the end of the head.
  // kIncomplete: all |len| bytes consumed (*consumed == len), more needed.
  // kHeadComplete: *consumed bytes ended the head; the accessors below are valid until reset().
  //   If has_body() is false the message is complete too: feed_body is not needed.
  // kError: see error_status(); the connection must be closed after the error response.
  // Leading empty lines before a request line are skipped (RFC 9112 2.2).
  Result feed_head(const char* data, size_t len, size_t* consumed);

  // Feeds raw body bytes (Content-Length or chunked framing) after kHeadComplete. Appends the
  // decoded body to *out. Never consumes past the end of the message, so pipelined requests
  // stay in the caller's buffer. Returns kIncomplete (all consumed), kMessageComplete, kError.
  Result feed_body(const char* data, size_t len, size_t* consumed, std::string* out);

  // Valid after kHeadComplete.
  std::string_view method() const;  // as sent: any token (RFC 9110 9.1), case-sensitive
  std::string_view target() const;  // raw request-target as sent
  // For an absolute-form target ("http://example.com/a?b", RFC 9112 3.2.2) path and query come
  // from the part after the authority, and path() is "/" when that part has no path.
  std::string_view path() const;       // before '?' (still percent-encoded)
  std::string_view query() const;      // after '?', before any '#'; "" when none
  std::string_view authority() const;  // of an absolute-form target ("host:port"), else ""
  int http_major() const;
  int http_minor() const;
  size_t header_count() const;
  std::string_view header_name(size_t i) const;   // as sent (case preserved)
  std::string_view header_value(size_t i) const;  // leading/trailing whitespace stripped
  bool keep_alive() const;  // HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive
  bool has_body() const;    // Content-Length > 0 or chunked
  bool chunked() const;
  std::optional<uint64_t> content_length() const;  // absent when chunked or not sent
  bool expect_continue() const;  // "Expect: 100-continue" on HTTP/1.1 (ignored on 1.0)
  bool upgrade() const;          // "Connection: upgrade" with an Upgrade header
  bool message_complete() const;
  // Bytes of a head (leading empty lines included) have been fed since reset() and the head
  // is not complete yet: a client that has started its next request is held to
  // header_timeout, not keepalive_timeout.
  bool head_started() const { return head_bytes_ > 0 && !head_complete_; }
  uint64_t body_bytes() const { return body_bytes_; }  // decoded body bytes fed so far

  // After kError: 400 (malformed, a method that is not a token, smuggling attempts, bad chunk
  // framing, a chunk size that does not fit in 64 bits, a target in a form the method does
  // not allow, no Host in HTTP/1.1, several Host fields or an invalid Host value), 413 (body over
  // max_body_bytes), 431 (head over max_header_bytes, more than max_header_fields fields),
  // 501 (unsupported transfer coding), 505 (HTTP version other than 1.0 and 1.1).
  int error_status() const;
  std::string_view error_reason() const;  // short text for the log

 private:
  // Helpers live in request_parser.cpp (head pre-scan, line tokenizer, header checks).
  struct Impl;
  friend struct Impl;

  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  struct HeaderSpan {
    Span name, value;
  };
  // Byte-level state of the head pre-scan (line structure and forbidden bytes, RFC 9112 2.2).
  enum class ScanState : uint8_t {
    kLeading,    // before the request line; empty lines are skipped
    kLeadingLf,  // CR seen in a leading empty line
    kRequestLine,
    kRequestLineLf,
    kLineStart,  // first byte of a field line or of the final empty line
    kFieldLine,
    kFieldLineLf,
    kFinalLf,  // CR of the empty line that ends the head
  };
  // Body framing (RFC 9112 6.3).
  enum class BodyState : uint8_t {
    kNone,     // no body, or head not complete yet
    kLength,   // Content-Length bytes remain
    kChunked,  // chunked_body_ decodes it
    kDone,
  };

  Limits limits_;
  std::string head_;  // the head's bytes as received (leading empty lines included)
  Span method_, target_;
  Span origin_;     // the target from its path on (all of it unless absolute-form)
  Span authority_;  // absolute-form only
  std::vector<HeaderSpan> headers_;
  size_t head_bytes_ = 0;
  size_t line_start_ = 0;  // offset in head_ of the first line not tokenized yet
  size_t searched_ = 0;    // head_ holds no LF in [line_start_, searched_)
  bool request_line_done_ = false;
  uint8_t http_major_ = 0;
  uint8_t http_minor_ = 0;
  ScanState scan_state_ = ScanState::kLeading;
  uint8_t request_line_spaces_ = 0;
  uint8_t version_pos_ = 0;       // bytes of "HTTP/x.y" matched so far
  size_t field_lines_ = 0;        // field lines the pre-scan has seen start
  bool too_many_fields_ = false;  // the pre-scan stopped at the field past the limit
  bool head_complete_ = false;
  bool message_complete_ = false;
  bool chunked_ = false;
  bool expect_continue_ = false;
  bool keep_alive_ = false;
  bool upgrade_ = false;
  std::optional<uint64_t> content_length_;
  BodyState body_state_ = BodyState::kNone;
  uint64_t body_remaining_ = 0;                   // of the Content-Length body
  uint64_t body_bytes_ = 0;                       // decoded so far
  std::unique_ptr<ChunkedDecoder> chunked_body_;  // from the first chunked body on
  int error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace aiowsgi::worker
