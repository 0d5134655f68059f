// Tests for ResponseHead: each refusal of start_response's arguments, each framing decision,
// the Date and Connection fields, and that the head comes from the copy, never the caller's
// memory.

#include "worker/protocol/response_head.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aiowsgi::worker {
namespace {

constexpr std::string_view kDate = "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";

using Strs = std::vector<std::string_view>;
using Fields = std::vector<std::pair<std::string, std::string>>;

// Fills *h; returns the first error.
HeadError fill(ResponseHead* h, std::string_view status, const Fields& fields) {
  h->reset();
  if (HeadError e = h->set_status(status); e != HeadError::kOk) return e;
  for (const auto& [name, value] : fields) {
    if (HeadError e = h->add_header(name, value); e != HeadError::kOk) return e;
  }
  return HeadError::kOk;
}

struct Built {
  std::string head;
  HeadPlan plan;
};

Built build(std::string_view status, const Fields& fields, HeadOptions o = {}) {
  ResponseHead h;
  EXPECT_EQ(fill(&h, status, fields), HeadError::kOk);
  if (o.date.empty()) o.date = kDate;
  Built b;
  b.plan = append_head(h, o, &b.head);
  return b;
}

TEST(ResponseHead, AcceptsStatusLines) {
  ResponseHead h;
  for (std::string_view s : Strs{"200 OK", "200 ", "404 Not Found", "599 x", "204 No Content",
                                 "301 Moved\tPermanently", "200 caf\xc3\xa9"}) {
    h.reset();
    EXPECT_EQ(h.set_status(s), HeadError::kOk) << s;
  }
  h.reset();
  ASSERT_EQ(h.set_status("418 I'm a teapot"), HeadError::kOk);
  EXPECT_EQ(h.status_code(), 418);
  EXPECT_EQ(h.fixed(), "HTTP/1.1 418 I'm a teapot\r\n");
}

TEST(ResponseHead, RefusesMalformedStatusLines) {
  ResponseHead h;
  for (std::string_view s :
       Strs{"", "200", "200OK", "OK 200", "99 Too Low", "099 Low", "600 High", "2000 Long",
            " 200 OK", "20x OK", "-20 OK", "200 OK\r\nX-Injected: 1", "200 OK\n", "200 OK\r",
            std::string_view("200 O\0K", 7)}) {
    h.reset();
    EXPECT_EQ(h.set_status(s), HeadError::kStatus) << s;
  }
}

TEST(ResponseHead, RefusesInformationalFinalStatus) {
  ResponseHead h;
  for (std::string_view s :
       Strs{"100 Continue", "101 Switching Protocols", "103 Early Hints", "199 Whatever"}) {
    h.reset();
    EXPECT_EQ(h.set_status(s), HeadError::kInformational) << s;
  }
}

TEST(ResponseHead, RefusesBadFieldNames) {
  ResponseHead h;
  for (std::string_view n : Strs{"", "X A", "X:A", "X\r\nA", "X\nA", "(x)", "a/b", "a\"b", "a\x7f",
                                 "caf\xc3\xa9", "a=b", std::string_view("a\0b", 3)}) {
    ASSERT_EQ(fill(&h, "200 OK", {}), HeadError::kOk);
    EXPECT_EQ(h.add_header(n, "v"), HeadError::kHeaderName) << n;
  }
  ASSERT_EQ(fill(&h, "200 OK", {}), HeadError::kOk);
  EXPECT_EQ(h.add_header("X-Token_1.!#$%&'*+^`|~", "v"), HeadError::kOk);
}

TEST(ResponseHead, RefusesCrLfNulInValues) {
  ResponseHead h;
  for (std::string_view v :
       Strs{"a\r\nX-Injected: yes", "a\nb", "a\rb", "\r\n", std::string_view("a\0b", 3)}) {
    ASSERT_EQ(fill(&h, "200 OK", {}), HeadError::kOk);
    EXPECT_EQ(h.add_header("X-A", v), HeadError::kHeaderValue) << v;
  }
  ASSERT_EQ(fill(&h, "200 OK", {}), HeadError::kOk);
  EXPECT_EQ(h.add_header("X-A", "tab\tand caf\xc3\xa9"), HeadError::kOk);
  EXPECT_EQ(h.add_header("X-Empty", ""), HeadError::kOk);
}

TEST(ResponseHead, ContentLengthIsDecimalDigitsOnly) {
  uint64_t v = 7;
  for (std::string_view s :
       Strs{"", " 5", "5 ", " -5", "-5", "+5", "0x5", "5.0", "5,5", "1e3", "\t5",
            "9223372036854775808", "18446744073709551616", "99999999999999999999999"}) {
    EXPECT_FALSE(parse_content_length(s, &v)) << s;
  }
  EXPECT_EQ(v, 7u);  // untouched on failure
  ASSERT_TRUE(parse_content_length("0", &v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(parse_content_length("007", &v));
  EXPECT_EQ(v, 7u);
  ASSERT_TRUE(parse_content_length("9223372036854775807", &v));
  EXPECT_EQ(v, 9223372036854775807u);

  ResponseHead h;
  EXPECT_EQ(fill(&h, "200 OK", {{"Content-Length", "+5"}}), HeadError::kContentLength);
  EXPECT_EQ(fill(&h, "200 OK", {{"content-length", " -5"}}), HeadError::kContentLength);
  ASSERT_EQ(fill(&h, "200 OK", {{"CONTENT-LENGTH", "12"}}), HeadError::kOk);
  EXPECT_TRUE(h.has_content_length());
  EXPECT_EQ(h.content_length(), 12u);
}

TEST(ResponseHead, RefusesDuplicateContentLengthEvenWhenEqual) {
  ResponseHead h;
  EXPECT_EQ(fill(&h, "200 OK", {{"Content-Length", "5"}, {"Content-Length", "6"}}),
            HeadError::kDuplicateContentLength);
  EXPECT_EQ(fill(&h, "200 OK", {{"Content-Length", "5"}, {"content-length", "5"}}),
            HeadError::kDuplicateContentLength);
}

TEST(ResponseHead, RefusesTransferEncoding) {
  ResponseHead h;
  EXPECT_EQ(fill(&h, "200 OK", {{"Transfer-Encoding", "chunked"}}), HeadError::kTransferEncoding);
  EXPECT_EQ(fill(&h, "200 OK", {{"transfer-encoding", "identity"}}), HeadError::kTransferEncoding);
}

TEST(ResponseHead, EveryErrorHasAText) {
  for (HeadError e : {HeadError::kStatus, HeadError::kInformational, HeadError::kHeaderName,
                      HeadError::kHeaderValue, HeadError::kContentLength,
                      HeadError::kDuplicateContentLength, HeadError::kTransferEncoding}) {
    EXPECT_GT(std::string_view(head_error_text(e)).size(), 10u);
  }
}

TEST(ResponseHead, CopiesTheFieldsNotTheCallersMemory) {
  std::string name = "X-Token";
  std::string value = "original";
  ResponseHead h;
  ASSERT_EQ(h.set_status("200 OK"), HeadError::kOk);
  ASSERT_EQ(h.add_header(name, value), HeadError::kOk);
  // What an app does to its list after start_response.
  name.assign("X-Injected");
  value.assign("a\r\nX-Injected: yes");
  HeadOptions o;
  o.date = kDate;
  o.known_length = 0;
  std::string out;
  (void)append_head(h, o, &out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-Token: original\r\nContent-Length: 0\r\n" +
                     std::string(kDate) + "\r\n");
}

TEST(ResponseHead, AddedFieldsFollowTheAppsEvenOfTheSameName) {
  ResponseHead h;
  ASSERT_EQ(h.set_status("200 OK"), HeadError::kOk);
  ASSERT_EQ(h.add_header("X-Frame-Options", "DENY"), HeadError::kOk);
  HeadOptions o;
  o.date = kDate;
  o.added = "X-Frame-Options: SAMEORIGIN\r\n";
  o.known_length = 0;
  std::string out;
  (void)append_head(h, o, &out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\nContent-Length: 0\r\n" +
                     std::string(kDate) + "X-Frame-Options: SAMEORIGIN\r\n\r\n");
}

TEST(ResponseHead, ResetKeepsNothingOfThePreviousResponse) {
  ResponseHead h;
  ASSERT_EQ(fill(&h, "404 Nope", {{"Content-Length", "3"}, {"Connection", "close"}, {"Date", "x"}}),
            HeadError::kOk);
  ASSERT_EQ(fill(&h, "200 OK", {{"X-A", "b"}}), HeadError::kOk);
  EXPECT_EQ(h.fixed(), "HTTP/1.1 200 OK\r\nX-A: b\r\n");
  EXPECT_FALSE(h.has_content_length());
  EXPECT_FALSE(h.wants_close());
  EXPECT_FALSE(h.has_date());
  EXPECT_EQ(h.status_code(), 200);
}

TEST(ResponseHead, FramingAppContentLengthWins) {
  HeadOptions o;
  o.known_length = 99;
  Built b = build("200 OK", {{"Content-Length", "5"}}, o);
  EXPECT_EQ(b.plan.framing, Framing::kContentLength);
  EXPECT_EQ(b.plan.content_length, 5u);
  EXPECT_TRUE(b.plan.keep_alive);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + std::string(kDate) + "\r\n");
}

TEST(ResponseHead, FramingKnownLength) {
  HeadOptions o;
  o.known_length = 1234567;
  Built b = build("200 OK", {{"Content-Type", "text/plain"}}, o);
  EXPECT_EQ(b.plan.framing, Framing::kContentLength);
  EXPECT_EQ(b.plan.content_length, 1234567u);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234567\r\n" +
                        std::string(kDate) + "\r\n");
}

TEST(ResponseHead, FramingChunkedForHttp11UnknownLength) {
  Built b = build("200 OK", {});
  EXPECT_EQ(b.plan.framing, Framing::kChunked);
  EXPECT_TRUE(b.plan.keep_alive);
  EXPECT_EQ(b.head,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + std::string(kDate) + "\r\n");
}

TEST(ResponseHead, FramingCloseForHttp10UnknownLength) {
  HeadOptions o;
  o.http11 = false;
  Built b = build("200 OK", {}, o);
  EXPECT_EQ(b.plan.framing, Framing::kClose);
  EXPECT_FALSE(b.plan.keep_alive);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\n" + std::string(kDate) + "Connection: close\r\n\r\n");
}

TEST(ResponseHead, Http10KeepAliveIsSaid) {
  HeadOptions o;
  o.http11 = false;
  o.known_length = 2;
  Built b = build("200 OK", {}, o);
  EXPECT_EQ(b.plan.framing, Framing::kContentLength);
  EXPECT_TRUE(b.plan.keep_alive);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + std::string(kDate) +
                        "Connection: keep-alive\r\n\r\n");
}

TEST(ResponseHead, FramingNoneForHeadOfUnknownLength) {
  HeadOptions o;
  o.head_request = true;
  Built b = build("200 OK", {}, o);
  EXPECT_EQ(b.plan.framing, Framing::kNone);
  EXPECT_TRUE(b.plan.keep_alive);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\n" + std::string(kDate) + "\r\n");
}

TEST(ResponseHead, FramingNoneForNoBodyStatuses) {
  for (std::string_view s : Strs{"204 No Content", "304 Not Modified"}) {
    HeadOptions o;
    o.known_length = 10;
    Built b = build(s, {}, o);
    EXPECT_EQ(b.plan.framing, Framing::kNone) << s;
    EXPECT_TRUE(b.plan.keep_alive);
    EXPECT_EQ(b.head.find("Content-Length"), std::string::npos) << b.head;
    EXPECT_EQ(b.head.find("Transfer-Encoding"), std::string::npos) << b.head;
  }
}

TEST(ResponseHead, ConnectionFieldIsTheServers) {
  // The app's "close" is honoured, written once, by the server.
  Built b = build("200 OK", {{"Connection", "Keep-Alive, CLOSE"}, {"Content-Length", "0"}});
  EXPECT_FALSE(b.plan.keep_alive);
  EXPECT_EQ(b.head, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + std::string(kDate) +
                        "Connection: close\r\n\r\n");
  // Other options are not the app's to send: the server decides persistence.
  b = build("200 OK", {{"Connection", "keep-alive"}, {"Content-Length", "0"}});
  EXPECT_TRUE(b.plan.keep_alive);
  EXPECT_EQ(b.head.find("onnection"), std::string::npos) << b.head;
  // "close" is an option, not a substring.
  b = build("200 OK", {{"Connection", "x-closed"}, {"Content-Length", "0"}});
  EXPECT_TRUE(b.plan.keep_alive);
  // The server's own reasons to close.
  HeadOptions o;
  o.keep_alive = false;
  o.known_length = 0;
  b = build("200 OK", {}, o);
  EXPECT_FALSE(b.plan.keep_alive);
  EXPECT_NE(b.head.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(ResponseHead, AppDateReplacesTheServers) {
  HeadOptions o;
  o.known_length = 0;
  Built b = build("200 OK", {{"date", "Fri, 02 Jan 1970 00:00:00 GMT"}}, o);
  EXPECT_EQ(b.head,
            "HTTP/1.1 200 OK\r\ndate: Fri, 02 Jan 1970 00:00:00 GMT\r\n"
            "Content-Length: 0\r\n\r\n");
}

TEST(ResponseHead, ChunkSizeLines) {
  std::string out;
  append_chunk_size(&out, 0);
  append_chunk_size(&out, 5);
  append_chunk_size(&out, 0x1a2f);
  append_chunk_size(&out, UINT64_MAX);
  EXPECT_EQ(out, "0\r\n5\r\n1a2f\r\nffffffffffffffff\r\n");
}

TEST(ResponseHead, ReusedObjectsDoNotReallocate) {
  ResponseHead h;
  std::string out;
  out.reserve(512);
  ASSERT_EQ(fill(&h, "200 OK", {{"Content-Type", "text/plain"}, {"X-A", "b"}}), HeadError::kOk);
  HeadOptions o;
  o.date = kDate;
  (void)append_head(h, o, &out);
  const char* data = out.data();
  const char* fixed = h.fixed().data();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(fill(&h, "200 OK", {{"Content-Type", "text/plain"}, {"X-A", "b"}}), HeadError::kOk);
    out.clear();
    (void)append_head(h, o, &out);
  }
  EXPECT_EQ(out.data(), data);
  EXPECT_EQ(h.fixed().data(), fixed);
}

// The heads the server writes itself (static files, canned errors) come from the same writer:
// its status table, its own Content-Length among the fields, a preformatted block as given.
TEST(ServerHead, StatusLinesFromTheTable) {
  const std::pair<int, std::string_view> cases[] = {
      {200, "HTTP/1.1 200 OK\r\n"},
      {206, "HTTP/1.1 206 Partial Content\r\n"},
      {304, "HTTP/1.1 304 Not Modified\r\n"},
      {404, "HTTP/1.1 404 Not Found\r\n"},
      {416, "HTTP/1.1 416 Range Not Satisfiable\r\n"},
      {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {599, "HTTP/1.1 599 Error\r\n"},
  };
  for (const auto& [code, line] : cases) {
    ResponseHead h;
    h.set_status(code);
    EXPECT_EQ(h.status_code(), code);
    EXPECT_EQ(h.fixed(), line);
  }
}

// The head for a server-made |h| with the test's Date.
Built server_head(const ResponseHead& h, bool http11, bool keep_alive, int64_t known = -1) {
  HeadOptions o;
  o.http11 = http11;
  o.keep_alive = keep_alive;
  o.known_length = known;
  o.date = kDate;
  Built b;
  b.plan = append_head(h, o, &b.head);
  return b;
}

TEST(ServerHead, StaticFileHeadByteForByte) {
  ResponseHead h;
  h.set_status(206);
  h.append_fields("Content-Type: text/css\r\n");
  h.set_content_length(10);
  h.append_fields("Accept-Ranges: bytes\r\nContent-Range: bytes 0-9/100\r\n");
  Built b = server_head(h, false, true);
  EXPECT_EQ(b.head, std::string("HTTP/1.1 206 Partial Content\r\nContent-Type: text/css\r\n"
                                "Content-Length: 10\r\nAccept-Ranges: bytes\r\n"
                                "Content-Range: bytes 0-9/100\r\n") +
                        std::string(kDate) + "Connection: keep-alive\r\n\r\n");
  EXPECT_EQ(b.plan.framing, Framing::kContentLength);
  EXPECT_EQ(b.plan.content_length, 10u);
  EXPECT_TRUE(b.plan.keep_alive);
}

TEST(ServerHead, NotModifiedHasNoFramingField) {
  ResponseHead h;
  h.set_status(304);
  h.append_fields("ETag: \"x\"\r\n");
  Built b = server_head(h, true, false);
  EXPECT_EQ(b.head, std::string("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n") +
                        std::string(kDate) + "Connection: close\r\n\r\n");
  EXPECT_EQ(b.plan.framing, Framing::kNone);
}

TEST(ServerHead, CannedErrorWithKnownLength) {
  ResponseHead h;
  h.set_status(503);
  ASSERT_EQ(h.add_header("Content-Type", "text/plain"), HeadError::kOk);
  Built b = server_head(h, true, false, 24);
  EXPECT_EQ(b.head, std::string("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 24\r\n") +
                        std::string(kDate) + "Connection: close\r\n\r\n");
}

}  // namespace
}  // namespace aiowsgi::worker
