// Tests for RequestParser's rejections: each malformed head gets its status, whole or byte
// by byte, without reading past its end; and the head, field, body and trailer limits.
// Inputs sit at the very end of an mmap'd page followed by a PROT_NONE page.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/guarded_buffer.h"
#include "tests/unit/request_feed.h"
#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {
namespace {

using aiowsgi::test_support::GuardedBuffer;
using parser_test::feed;
using parser_test::parse;
using parser_test::Parsed;
using parser_test::Result;

struct BadCase {
  const char* name;
  std::string input;
  int status;
};

std::vector<BadCase> bad_cases() {
  const std::string h = "Host: h\r\n";
  return {
      {"garbage request line", "HELLO\r\n\r\n", 400},
      {"method not a token", "GE(T / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"method with a slash", "GET/1 / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"method with obs-text", "G\xc9T / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"method with a colon", "X:Y / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"missing version (HTTP/0.9)", "GET /\r\n\r\n", 400},
      {"double space", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"trailing space", "GET / HTTP/1.1 \r\n" + h + "\r\n", 400},
      {"tab in request line", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", 400},
      {"leading space", " GET / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"bad version text", "GET / HTXP/1.1\r\n" + h + "\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\n" + h + "\r\n", 400},
      {"long version", "GET / HTTP/1.10\r\n" + h + "\r\n", 400},
      {"short version", "GET / HTTP/1\r\n" + h + "\r\n", 400},
      {"empty target", "GET  HTTP/1.1\r\n" + h + "\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", 505},
      {"HTTP/0.9 explicit", "GET / HTTP/0.9\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\n" + h + "\r\n", 505},
      {"NUL in target", std::string("GET /a\0b HTTP/1.1\r\n", 19) + h + "\r\n", 400},
      {"NUL in header value", "GET / HTTP/1.1\r\n" + h + std::string("X: a\0b\r\n\r\n", 10), 400},
      {"control char in header", "GET / HTTP/1.1\r\n" + h + "X: a\x01z\r\n\r\n", 400},
      {"DEL in header", "GET / HTTP/1.1\r\n" + h + "X: a\x7fz\r\n\r\n", 400},
      {"bare CR in header", "GET / HTTP/1.1\r\n" + h + "X: a\rb\r\n\r\n", 400},
      {"bare CR ending header", "GET / HTTP/1.1\r\n" + h + "X: a\rX: b\r\n\r\n", 400},
      {"bare LF in header", "GET / HTTP/1.1\r\n" + h + "X: a\nY: b\r\n\r\n", 400},
      {"bare LF line ends", "GET / HTTP/1.1\nHost: h\n\n", 400},
      {"bare CR in leading line", "\rGET / HTTP/1.1\r\n" + h + "\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
      {"tab before colon", "GET / HTTP/1.1\r\n" + h + "X\t: v\r\n\r\n", 400},
      {"empty field name", "GET / HTTP/1.1\r\n" + h + ": v\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\n" + h + "NoColon\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", 400},
      {"obs-fold tab", "GET / HTTP/1.1\r\n" + h + "X: a\r\n\tb\r\n\r\n", 400},
      {"space before first field", "GET / HTTP/1.1\r\n " + h + "\r\n", 400},
      {"CL and TE",
       "POST / HTTP/1.1\r\n" + h +
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"TE and CL",
       "POST / HTTP/1.1\r\n" + h +
           "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
       400},
      {"two equal CL",
       "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"conflicting CL",
       "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      {"CL list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3, 3\r\n\r\nabc", 400},
      {"negative CL", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", 400},
      {"plus CL", "POST / HTTP/1.1\r\n" + h + "Content-Length: +1\r\n\r\nx", 400},
      {"non-numeric CL", "POST / HTTP/1.1\r\n" + h + "Content-Length: abc\r\n\r\n", 400},
      {"empty CL", "POST / HTTP/1.1\r\n" + h + "Content-Length:\r\n\r\n", 400},
      {"hex CL", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x10\r\n\r\n", 400},
      {"overflowing CL",
       "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
      {"CL max uint64", "POST / HTTP/1.1\r\n" + h + "Content-Length: 18446744073709551616\r\n\r\n",
       400},
      {"TE final not chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"TE chunked then gzip",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"TE chunked twice",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE empty", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n\r\n", 400},
      {"TE chunked-ish", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunkedx\r\n\r\n", 400},
      {"TE empty list element",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", 400},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE gzip, chunked",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"TE unknown, chunked",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n\r\n",
       501},
      {"no Host in 1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
      {"two Hosts in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"invalid Host ###", "GET / HTTP/1.1\r\nHost: ###\r\n\r\n", 400},
      {"invalid Host in 1.0", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400},
      {"CONNECT without port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"TE chunked then tab-padded gzip",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked,\tgzip\t\r\n\r\n", 400},
      {"CONNECT with body", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 2\r\n\r\nab",
       400},
      // Chunked framing.
      {"chunk size not hex", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
       400},
      {"empty chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n\r\n",
       400},
      {"negative chunk size",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400},
      {"chunk size overflow",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400},
      {"chunk data without CRLF",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
      {"chunk data with bare LF",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400},
      {"chunk data too long",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400},
      {"chunk size bare LF",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
      {"chunk size bare CR",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n", 400},
      {"chunk size trailing space",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
       400},
      {"control char in chunk ext",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n", 400},
      {"last chunk without final CRLF",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\rX", 400},
      {"bad trailer",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n",
       400},
      {"obs-fold trailer",
       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: x\r\n y\r\n\r\n",
       400},
  };
}

TEST(RequestParserMalformed, EachCaseGetsItsStatus) {
  for (const BadCase& c : bad_cases()) {
    GuardedBuffer buf(c.input);
    RequestParser p({});
    Parsed whole = feed(p, buf.view());
    EXPECT_EQ(whole.result, Result::kError) << c.name;
    EXPECT_EQ(whole.error_status, c.status) << c.name << ": " << p.error_reason();
    EXPECT_FALSE(p.error_reason().empty()) << c.name;
    EXPECT_LE(whole.consumed, c.input.size()) << c.name;

    // Byte by byte: each piece ends at the guard page too, same verdict.
    RequestParser q({});
    Parsed bytes;
    size_t pos = 0;
    bool head_done = false;
    std::string body;
    Result r = Result::kIncomplete;
    while (pos < c.input.size() && r != Result::kError && r != Result::kMessageComplete) {
      GuardedBuffer one(std::string_view(c.input).substr(pos, 1));
      size_t consumed = 0;
      r = head_done ? q.feed_body(one.view().data(), 1, &consumed, &body)
                    : q.feed_head(one.view().data(), 1, &consumed);
      if (r == Result::kHeadComplete) {
        head_done = true;
        if (q.message_complete()) r = Result::kMessageComplete;
      }
      pos += consumed;
      if (r == Result::kIncomplete) {
        EXPECT_EQ(consumed, 1u) << c.name;
      }
    }
    EXPECT_EQ(r, Result::kError) << c.name << " byte by byte";
    EXPECT_EQ(q.error_status(), c.status) << c.name << " byte by byte: " << q.error_reason();

    // The parser stays failed until reset().
    size_t consumed = 1;
    EXPECT_EQ(q.feed_head("GET", 3, &consumed), Result::kError);
    EXPECT_EQ(consumed, 0u);
  }
}

TEST(RequestParserMalformed, EveryPrefixOfMalformedNeverReadsPastItsEnd) {
  // Each prefix ends at the guard page; the verdict is either "need more" or an error.
  for (const BadCase& c : bad_cases()) {
    for (size_t k = 1; k <= c.input.size(); ++k) {
      GuardedBuffer buf(std::string_view(c.input).substr(0, k));
      RequestParser p({});
      Parsed r = feed(p, buf.view());
      EXPECT_NE(r.result, Result::kMessageComplete) << c.name << " prefix " << k;
    }
  }
}

TEST(RequestParserLimits, HeadExactlyAtLimitPassesOneMoreByteIs431) {
  const std::string base = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  const size_t limit = 200;
  std::string ok = base + std::string(limit - base.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(ok.size(), limit);
  Parsed r = parse(ok, {.max_header_bytes = limit});
  EXPECT_EQ(r.result, Result::kMessageComplete);

  std::string over = base + std::string(limit - base.size() - 3, 'a') + "\r\n\r\n";
  Parsed e = parse(over, {.max_header_bytes = limit});
  EXPECT_EQ(e.result, Result::kError);
  EXPECT_EQ(e.error_status, 431);

  // Same verdicts byte by byte.
  for (const std::string* s : {&ok, &over}) {
    GuardedBuffer buf(*s);
    RequestParser p({.max_header_bytes = limit});
    std::vector<size_t> cuts;
    for (size_t i = 1; i < s->size(); ++i) cuts.push_back(i);
    Parsed b = feed(p, buf.view(), cuts);
    EXPECT_EQ(b.result, s == &ok ? Result::kMessageComplete : Result::kError);
  }
}

TEST(RequestParserLimits, EndlessHeadIs431AndLeadingEmptyLinesCount) {
  std::string endless = "GET / HTTP/1.1\r\n";
  while (endless.size() < 70000) endless += "X-Filler: 0123456789\r\n";
  Parsed r = parse(endless);  // default 64 KiB
  EXPECT_EQ(r.result, Result::kError);
  EXPECT_EQ(r.error_status, 431);

  std::string blank;
  while (blank.size() < 100) blank += "\r\n";
  Parsed b = parse(blank + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", {.max_header_bytes = 100});
  EXPECT_EQ(b.error_status, 431);
}

TEST(RequestParserLimits, LargeLimitAboveLibraryDefault) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(100000, 'b') + "\r\n\r\n";
  Parsed r = parse(req, {.max_header_bytes = 200000});
  EXPECT_EQ(r.result, Result::kMessageComplete) << r.error_status;
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].second.size(), 100000u);
}

TEST(RequestParserLimits, BodyLimit413) {
  const RequestParser::Limits lim{.max_header_bytes = 65536, .max_body_bytes = 10};
  Parsed at = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", lim);
  EXPECT_EQ(at.result, Result::kMessageComplete);
  EXPECT_EQ(at.body, "0123456789");

  // Known up front: rejected when the head completes, before any body byte arrives.
  GuardedBuffer head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
  RequestParser p(lim);
  size_t c = 0;
  EXPECT_EQ(p.feed_head(head.view().data(), head.view().size(), &c), Result::kError);
  EXPECT_EQ(p.error_status(), 413);

  const std::string chunked_head =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  Parsed ok = parse(chunked_head + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", lim);
  EXPECT_EQ(ok.result, Result::kMessageComplete);
  EXPECT_EQ(ok.body, "0123456789");
  Parsed over = parse(chunked_head + "5\r\n01234\r\n5\r\n56789\r\n1\r\nx\r\n0\r\n\r\n", lim);
  EXPECT_EQ(over.result, Result::kError);
  EXPECT_EQ(over.error_status, 413);
  EXPECT_EQ(over.body, "0123456789");  // nothing past the limit was appended
  Parsed huge = parse(chunked_head + "ffffffff\r\n", lim);
  EXPECT_EQ(huge.error_status, 413);

  Parsed unlimited = parse(chunked_head + "ffff\r\n", {});
  EXPECT_EQ(unlimited.result, Result::kIncomplete);
}

TEST(RequestParserLimits, TrailersAreBounded) {
  std::string req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  while (req.size() < 20000) req += "T: 0123456789abcdef\r\n";
  Parsed r = parse(req, {.max_header_bytes = 8192});
  EXPECT_EQ(r.result, Result::kError);
  EXPECT_EQ(r.error_status, 431);
}

}  // namespace
}  // namespace aiowsgi::worker
