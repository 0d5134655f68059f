// Test support for RequestParser's unit tests (worker/protocol/request_parser*_test.cpp):
// Parsed (everything observable about one request) and feed()/parse(), which drive the
// parser the way the connection code does.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/unit/guarded_buffer.h"
#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker::parser_test {

using Result = RequestParser::Result;

// Everything observable about one parsed request, for comparing feeding strategies.
struct Parsed {
  Result result = Result::kIncomplete;  // last result: kMessageComplete, kIncomplete or kError
  size_t consumed = 0;                  // bytes of the input that belong to this request
  int error_status = 0;
  std::string method, target, path, query;
  int major = 0, minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = false, has_body = false, chunked = false, expect_continue = false;
  bool upgrade = false;
  std::optional<uint64_t> content_length;
  std::string body;
  bool operator==(const Parsed&) const = default;
};

// Feeds |in| the way the connection code does: bytes arrive in pieces ending at |arrivals|
// (then at in.size()); a kIncomplete answer must have consumed everything it was given, a
// kHeadComplete answer leaves the rest of the piece for feed_body.
inline Parsed feed(RequestParser& p, std::string_view in, std::vector<size_t> arrivals = {}) {
  Parsed out;
  arrivals.push_back(in.size());
  size_t pos = 0;
  bool head_done = false;
  for (size_t end : arrivals) {
    while (pos < end) {
      size_t c = 0;
      const size_t avail = end - pos;
      Result r = head_done ? p.feed_body(in.data() + pos, avail, &c, &out.body)
                           : p.feed_head(in.data() + pos, avail, &c);
      EXPECT_LE(c, avail);
      pos += c;
      out.result = r;
      if (r == Result::kIncomplete) {
        EXPECT_EQ(c, avail) << "kIncomplete must consume everything";
        break;
      }
      if (r == Result::kError) {
        out.error_status = p.error_status();
        out.consumed = pos;
        return out;
      }
      if (r == Result::kHeadComplete) {
        head_done = true;
        out.method = p.method();
        out.target = p.target();
        out.path = p.path();
        out.query = p.query();
        out.major = p.http_major();
        out.minor = p.http_minor();
        for (size_t i = 0; i < p.header_count(); ++i) {
          out.headers.emplace_back(p.header_name(i), p.header_value(i));
        }
        out.keep_alive = p.keep_alive();
        out.has_body = p.has_body();
        out.chunked = p.chunked();
        out.expect_continue = p.expect_continue();
        out.upgrade = p.upgrade();
        out.content_length = p.content_length();
        EXPECT_EQ(p.message_complete(), !p.has_body());
        if (!p.has_body()) {
          out.result = Result::kMessageComplete;
          out.consumed = pos;
          return out;
        }
        out.result = Result::kIncomplete;  // the message still needs its body
      }
      if (r == Result::kMessageComplete) {
        EXPECT_TRUE(p.message_complete());
        out.consumed = pos;
        return out;
      }
    }
  }
  out.consumed = pos;
  return out;
}

inline Parsed parse(std::string_view in, RequestParser::Limits limits = {}) {
  test_support::GuardedBuffer buf(in);
  RequestParser p(limits);
  return feed(p, buf.view());
}

}  // namespace aiowsgi::worker::parser_test
