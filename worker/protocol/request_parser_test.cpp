// Tests for RequestParser on well-formed requests (any split, pipelining, keep-alive, reuse)
// and percent_decode; rejections and limits are in request_parser_malformed_test.cpp. Inputs
// sit at the very end of an mmap'd page followed by a PROT_NONE page (picohttpparser's
// trick), so any over-read crashes the test.

#include "worker/protocol/request_parser.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/guarded_buffer.h"
#include "tests/unit/request_feed.h"
#include "worker/protocol/request_target.h"

namespace aiowsgi::worker {
namespace {

using Result = RequestParser::Result;

using aiowsgi::test_support::GuardedBuffer;

using parser_test::feed;
using parser_test::parse;
using parser_test::Parsed;

const char kGet[] =
    "GET /search?q=wsgi&lang=en HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";
const char kPost[] =
    "POST /submit HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "name=a&mode=b";
const char kChunked[] =
    "POST /upload HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "7;ext=\"v\"\r\n, world\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "\r\n";
const char kPipelined[] =
    "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
    "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
const char kHttp10KeepAlive[] =
    "\r\n\r\nGET /old HTTP/1.0\r\n"
    "Connection: Keep-Alive\r\n"
    "\r\n";

const std::vector<std::string_view>& valid_requests() {
  static const std::vector<std::string_view> v = {kGet, kPost, kChunked, kPipelined,
                                                  kHttp10KeepAlive};
  return v;
}

// The first complete message of each valid input, as the parser must see it.
size_t first_message_size(std::string_view in) { return parse(in).consumed; }

TEST(RequestParser, EveryPrefixIsIncompleteAndFullyConsumed) {
  for (std::string_view req : valid_requests()) {
    const size_t full = first_message_size(req);
    ASSERT_GT(full, 0u);
    for (size_t k = 1; k < full; ++k) {
      const std::string_view prefix = req.substr(0, k);
      GuardedBuffer buf(prefix);
      RequestParser p({});
      Parsed r = feed(p, buf.view());
      EXPECT_EQ(r.result, Result::kIncomplete) << "prefix " << k << " of:\n" << req;
      EXPECT_EQ(r.consumed, k) << "prefix " << k << " of:\n" << req;
      EXPECT_EQ(p.error_status(), 0);
      EXPECT_FALSE(p.message_complete());
      // Directly: a prefix of the head is consumed whole and answered kIncomplete.
      const size_t head_len = req.find("\r\n\r\n", req.find_first_not_of("\r\n")) + 4;
      if (k < head_len) {
        RequestParser q({});
        size_t c = 0;
        EXPECT_EQ(q.feed_head(buf.view().data(), k, &c), Result::kIncomplete);
        EXPECT_EQ(c, k);
      }
    }
  }
}

TEST(RequestParser, SameResultForAnySplit) {
  std::mt19937 rng(12345);
  for (std::string_view req : valid_requests()) {
    GuardedBuffer buf(req);
    RequestParser p({});
    const Parsed whole = feed(p, buf.view());
    ASSERT_EQ(whole.result, Result::kMessageComplete) << req;

    std::vector<size_t> every_byte;
    for (size_t i = 1; i < req.size(); ++i) every_byte.push_back(i);
    p.reset();
    EXPECT_EQ(feed(p, buf.view(), every_byte), whole) << "byte by byte:\n" << req;

    for (int round = 0; round < 200; ++round) {
      std::vector<size_t> cuts;
      std::uniform_int_distribution<size_t> pick(1, req.size() - 1);
      const size_t n = std::uniform_int_distribution<size_t>(1, 6)(rng);
      for (size_t i = 0; i < n; ++i) cuts.push_back(pick(rng));
      std::sort(cuts.begin(), cuts.end());
      cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
      p.reset();
      EXPECT_EQ(feed(p, buf.view(), cuts), whole) << "random split round " << round;
    }
  }
}

TEST(RequestParser, GetAccessors) {
  Parsed r = parse(kGet);
  ASSERT_EQ(r.result, Result::kMessageComplete);
  EXPECT_EQ(r.consumed, std::strlen(kGet));
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/search?q=wsgi&lang=en");
  EXPECT_EQ(r.path, "/search");
  EXPECT_EQ(r.query, "q=wsgi&lang=en");
  EXPECT_EQ(r.major, 1);
  EXPECT_EQ(r.minor, 1);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"Host", "example.com"}, {"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}};
  EXPECT_EQ(r.headers, want);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.has_body);
  EXPECT_FALSE(r.chunked);
  EXPECT_FALSE(r.content_length.has_value());
  EXPECT_FALSE(r.expect_continue);
  EXPECT_FALSE(r.upgrade);
}

TEST(RequestParser, PostWithContentLength) {
  Parsed r = parse(kPost);
  ASSERT_EQ(r.result, Result::kMessageComplete);
  EXPECT_EQ(r.consumed, std::strlen(kPost));
  EXPECT_EQ(r.method, "POST");
  EXPECT_TRUE(r.has_body);
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(r.content_length, 13u);
  EXPECT_EQ(r.body, "name=a&mode=b");
  EXPECT_EQ(r.query, "");
}

TEST(RequestParser, ChunkedBodyWithExtensionsAndTrailers) {
  Parsed r = parse(kChunked);
  ASSERT_EQ(r.result, Result::kMessageComplete);
  EXPECT_EQ(r.consumed, std::strlen(kChunked));
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.has_body);
  EXPECT_FALSE(r.content_length.has_value());
  EXPECT_EQ(r.body, "hello, world");
  EXPECT_EQ(r.headers.size(), 2u);  // the trailer is not a header
}

TEST(RequestParser, ChunkedVariants) {
  const char* head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n";
  struct Case {
    const char* body;
    const char* want;
  };
  const Case cases[] = {
      {"0\r\n\r\n", ""},
      {"000\r\n\r\n", ""},
      {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
      {"1 ;a=b\r\nx\r\n0\r\n\r\n", "x"},
      {"1;a\r\nx\r\n0;b\r\nT: 1\r\nU:\r\n\r\n", "x"},
      {"0000000000000000000001\r\nx\r\n0\r\n\r\n", "x"},
  };
  for (const Case& c : cases) {
    const std::string req = std::string(head) + c.body;
    Parsed r = parse(req);
    EXPECT_EQ(r.result, Result::kMessageComplete) << c.body;
    EXPECT_EQ(r.body, c.want) << c.body;
    EXPECT_EQ(r.consumed, req.size()) << c.body;
  }
}

TEST(RequestParser, PipelinedRequestsParseOneAfterAnother) {
  GuardedBuffer buf(kPipelined);
  const std::string_view all = buf.view();
  RequestParser p({});
  const size_t first_len = std::strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
  const size_t second_len =
      std::strlen("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");

  Parsed a = feed(p, all);
  ASSERT_EQ(a.result, Result::kMessageComplete);
  EXPECT_EQ(a.target, "/a");
  EXPECT_EQ(a.consumed, first_len);

  p.reset();
  Parsed b = feed(p, all.substr(first_len));
  ASSERT_EQ(b.result, Result::kMessageComplete);
  EXPECT_EQ(b.target, "/b");
  EXPECT_EQ(b.body, "xyz");
  EXPECT_EQ(b.consumed, second_len);

  p.reset();
  Parsed c = feed(p, all.substr(first_len + second_len));
  ASSERT_EQ(c.result, Result::kMessageComplete);
  EXPECT_EQ(c.target, "/c");
  EXPECT_FALSE(c.keep_alive);
  EXPECT_EQ(first_len + second_len + c.consumed, all.size());
}

TEST(RequestParser, HeadCompleteLeavesBodyAndNextRequestUnconsumed) {
  GuardedBuffer buf(kPipelined);
  RequestParser p({});
  size_t c = 0;
  ASSERT_EQ(p.feed_head(buf.view().data(), buf.view().size(), &c), Result::kHeadComplete);
  EXPECT_EQ(c, std::strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"));
  EXPECT_TRUE(p.message_complete());
  EXPECT_FALSE(p.has_body());
  // Feeding again is harmless and consumes nothing.
  std::string body;
  EXPECT_EQ(p.feed_body(buf.view().data() + c, buf.view().size() - c, &c, &body),
            Result::kMessageComplete);
  EXPECT_EQ(c, 0u);
  EXPECT_TRUE(body.empty());
}

TEST(RequestParser, KeepAliveVariants) {
  struct Case {
    const char* req;
    bool keep_alive;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
  };
  for (const Case& c : cases) {
    Parsed r = parse(c.req);
    ASSERT_EQ(r.result, Result::kMessageComplete) << c.req;
    EXPECT_EQ(r.keep_alive, c.keep_alive) << c.req;
  }
  Parsed r10 = parse(kHttp10KeepAlive);
  EXPECT_EQ(r10.major, 1);
  EXPECT_EQ(r10.minor, 0);
  EXPECT_EQ(r10.target, "/old");
  EXPECT_EQ(r10.consumed, std::strlen(kHttp10KeepAlive));  // leading CRLFs included
}

TEST(RequestParser, HeaderWhitespaceTrimmedAndCasePreserved) {
  Parsed r = parse(
      "GET / HTTP/1.1\r\nHost:h\r\nX-Pad: \t spaced out \t \r\nX-Empty:\r\nX-Blank:   \r\n"
      "x-lower: v\r\n\r\n");
  ASSERT_EQ(r.result, Result::kMessageComplete);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"Host", "h"}, {"X-Pad", "spaced out"}, {"X-Empty", ""}, {"X-Blank", ""}, {"x-lower", "v"}};
  EXPECT_EQ(r.headers, want);
}

TEST(RequestParser, ExpectContinueAndUpgrade) {
  Parsed e =
      parse("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_EQ(e.result, Result::kMessageComplete);
  EXPECT_TRUE(e.expect_continue);
  EXPECT_EQ(e.body, "ok");
  Parsed other = parse("GET / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n");
  EXPECT_FALSE(other.expect_continue);

  Parsed u = parse(
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "\r\n");
  ASSERT_EQ(u.result, Result::kMessageComplete);
  EXPECT_TRUE(u.upgrade);
  Parsed no_conn = parse("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_FALSE(no_conn.upgrade);
}

TEST(RequestParser, QueryAndFragment) {
  Parsed r = parse("GET /p/a%20b?x=1?y#frag HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(r.result, Result::kMessageComplete);
  EXPECT_EQ(r.path, "/p/a%20b");
  EXPECT_EQ(r.query, "x=1?y");
  Parsed star = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(star.result, Result::kMessageComplete);
  EXPECT_EQ(star.path, "*");
  Parsed empty_q = parse("GET /x? HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(empty_q.path, "/x");
  EXPECT_EQ(empty_q.query, "");
}

TEST(RequestParser, ContentLengthZeroAndEqualHostless10) {
  Parsed r = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.result, Result::kMessageComplete);
  EXPECT_EQ(r.content_length, 0u);
  EXPECT_FALSE(r.has_body);
  Parsed r10 = parse("GET / HTTP/1.0\r\n\r\n");  // Host is optional in HTTP/1.0
  EXPECT_EQ(r10.result, Result::kMessageComplete);
}

TEST(RequestParser, ResetReusesAcrossManyRequests) {
  RequestParser p({});
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string_view req = valid_requests()[static_cast<size_t>(i) % valid_requests().size()];
    GuardedBuffer buf(req);
    p.reset();
    Parsed a = feed(p, buf.view());
    p.reset();
    Parsed b = feed(p, buf.view(), {std::uniform_int_distribution<size_t>(1, req.size() - 1)(rng)});
    ASSERT_EQ(a, b) << i;
    ASSERT_EQ(a.result, Result::kMessageComplete) << i;
  }
  // After an error, reset() makes the parser usable again.
  GuardedBuffer bad("GET / HTTP/1.1\r\nHost : h\r\n\r\n");
  p.reset();
  EXPECT_EQ(feed(p, bad.view()).error_status, 400);
  p.reset();
  GuardedBuffer good(kGet);
  EXPECT_EQ(feed(p, good.view()).result, Result::kMessageComplete);
  EXPECT_EQ(p.error_status(), 0);
}

TEST(RequestParser, EmptyFeedIsIncomplete) {
  RequestParser p({});
  size_t c = 7;
  EXPECT_EQ(p.feed_head("", 0, &c), Result::kIncomplete);
  EXPECT_EQ(c, 0u);
  EXPECT_EQ(p.error_status(), 0);
}

TEST(PercentDecode, DecodesValidEscapesAndKeepsInvalidOnes) {
  struct Case {
    std::string_view in, want;
  };
  const Case cases[] = {
      {"", ""},
      {"plain", "plain"},
      {"a%20b", "a b"},
      {"%2F%2f", "//"},
      {"%e2%82%AC", "\xe2\x82\xac"},
      {"%00", std::string_view("\0", 1)},
      {"%", "%"},
      {"%4", "%4"},
      {"a%4", "a%4"},
      {"%zz", "%zz"},
      {"%4g", "%4g"},
      {"%%41", "%A"},
      {"100%", "100%"},
      {"+", "+"},
  };
  for (const Case& c : cases) {
    GuardedBuffer buf(c.in);
    std::string out = "pre:";
    percent_decode(buf.view(), &out);
    EXPECT_EQ(out, "pre:" + std::string(c.want)) << c.in;
  }
}

}  // namespace
}  // namespace aiowsgi::worker
