// Tests for RequestParser and percent_decode. Inputs sit at the very end of an mmap'd page
// followed by a PROT_NONE page (picohttpparser's trick), so any over-read crashes the test.

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
#include "worker/protocol/request_target.h"

namespace aiowsgi::worker {
namespace {

using Result = RequestParser::Result;

using aiowsgi::test_support::GuardedBuffer;

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
Parsed feed(RequestParser& p, std::string_view in, std::vector<size_t> arrivals = {}) {
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

Parsed parse(std::string_view in, RequestParser::Limits limits = {}) {
  GuardedBuffer buf(in);
  RequestParser p(limits);
  return feed(p, buf.view());
}

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
