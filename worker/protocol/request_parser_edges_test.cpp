// Tests for RequestParser's edge rules: the header field count limit, absolute-form targets,
// chunk-size bounds, Expect on HTTP/1.0, head_started(), extension methods, optional
// whitespace around list elements and Host values. Inputs end against a guard page.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "tests/unit/guarded_buffer.h"
#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {
namespace {

using Result = RequestParser::Result;
using aiowsgi::test_support::GuardedBuffer;

// Feeds a whole request (head, then body) in one piece, or one byte per call with
// |byte_by_byte|. Returns the last result; the parser keeps the request's state.
Result run(RequestParser& p, std::string_view in, std::string* body = nullptr,
           bool byte_by_byte = false) {
  std::string sink;
  if (body == nullptr) body = &sink;
  size_t pos = 0;
  bool head_done = false;
  Result r = Result::kIncomplete;
  while (pos < in.size()) {
    const size_t n = byte_by_byte ? 1 : in.size() - pos;
    GuardedBuffer buf(in.substr(pos, n));
    size_t c = 0;
    r = head_done ? p.feed_body(buf.data(), n, &c, body) : p.feed_head(buf.data(), n, &c);
    pos += c;
    if (r == Result::kError || r == Result::kMessageComplete) return r;
    if (r == Result::kHeadComplete) {
      head_done = true;
      if (p.message_complete()) return Result::kMessageComplete;
    } else if (c != n) {
      ADD_FAILURE() << "kIncomplete must consume everything";
      return r;
    }
  }
  return r;
}

std::string fields(size_t n, std::string_view line = "a: x\r\n") {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += line;
  return s;
}

TEST(RequestParserFieldLimit, AtTheLimitPassesOneMoreIs431) {
  const RequestParser::Limits lim{.max_header_fields = 10};
  for (bool bytes : {false, true}) {
    RequestParser ok(lim);
    // Host plus nine more: exactly ten fields.
    EXPECT_EQ(run(ok, "GET / HTTP/1.1\r\nHost: h\r\n" + fields(9) + "\r\n", nullptr, bytes),
              Result::kMessageComplete);
    EXPECT_EQ(ok.header_count(), 10u);

    RequestParser over(lim);
    EXPECT_EQ(run(over, "GET / HTTP/1.1\r\nHost: h\r\n" + fields(10) + "\r\n", nullptr, bytes),
              Result::kError);
    EXPECT_EQ(over.error_status(), 431) << over.error_reason();
  }
}

TEST(RequestParserFieldLimit, DefaultIs100AndZeroMeansUnlimited) {
  RequestParser def({});
  EXPECT_EQ(run(def, "GET / HTTP/1.1\r\nHost: h\r\n" + fields(99) + "\r\n"),
            Result::kMessageComplete);
  RequestParser def_over({});
  EXPECT_EQ(run(def_over, "GET / HTTP/1.1\r\nHost: h\r\n" + fields(100) + "\r\n"), Result::kError);
  EXPECT_EQ(def_over.error_status(), 431);

  RequestParser unlimited({.max_header_bytes = 1 << 20, .max_header_fields = 0});
  EXPECT_EQ(run(unlimited, "GET / HTTP/1.1\r\nHost: h\r\n" + fields(5000) + "\r\n"),
            Result::kMessageComplete);
  EXPECT_EQ(unlimited.header_count(), 5001u);
}

TEST(RequestParserFieldLimit, TrailersDoNotCount) {
  RequestParser p({.max_header_fields = 3});
  std::string body;
  EXPECT_EQ(run(p,
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "1\r\nx\r\n0\r\n" +
                    fields(10, "T: 1\r\n") + "\r\n",
                &body),
            Result::kMessageComplete);
  EXPECT_EQ(body, "x");
}

struct TargetCase {
  std::string target;
  std::string path, query, authority;
};

TEST(RequestParserTarget, AbsoluteFormIsServedFromItsPathAndAuthority) {
  const TargetCase cases[] = {
      {"http://example.com/foo?q=1", "/foo", "q=1", "example.com"},
      {"https://example.com:8443/a/b", "/a/b", "", "example.com:8443"},
      {"HTTP://Example.COM/x", "/x", "", "Example.COM"},
      {"http://example.com", "/", "", "example.com"},
      {"http://example.com?q", "/", "q", "example.com"},
      {"http://example.com/p?x=1#frag", "/p", "x=1", "example.com"},
      {"http://127.0.0.1:8080/", "/", "", "127.0.0.1:8080"},
      {"http://[::1]:8080/v6", "/v6", "", "[::1]:8080"},
      {"http://a.b-c_d~e/%41", "/%41", "", "a.b-c_d~e"},
      {"/plain?z", "/plain", "z", ""},
  };
  for (const TargetCase& c : cases) {
    RequestParser p({});
    ASSERT_EQ(run(p, "GET " + c.target + " HTTP/1.1\r\nHost: other\r\n\r\n"),
              Result::kMessageComplete)
        << c.target << ": " << p.error_reason();
    EXPECT_EQ(p.target(), c.target);  // REQUEST_URI keeps the target as sent
    EXPECT_EQ(p.path(), c.path) << c.target;
    EXPECT_EQ(p.query(), c.query) << c.target;
    EXPECT_EQ(p.authority(), c.authority) << c.target;
  }
}

TEST(RequestParserTarget, MalformedFormsAre400) {
  const std::string bad[] = {
      "ftp://example.com/x",
      "http:/example.com/x",
      "http//example.com/x",
      "http:///x",
      "http://user@example.com/",
      "http://exa mple/",
      "http://host:80a/",
      "http://[::1/x",
      "http://host:8080:1/",
      "example.com/x",
      "*",
      "mailto:a",
  };
  for (const std::string& t : bad) {
    RequestParser p({});
    EXPECT_EQ(run(p, "GET " + t + " HTTP/1.1\r\nHost: h\r\n\r\n"), Result::kError) << t;
    EXPECT_EQ(p.error_status(), 400) << t << ": " << p.error_reason();
  }
  RequestParser star({});  // asterisk-form is OPTIONS' own
  EXPECT_EQ(run(star, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), Result::kMessageComplete);
  EXPECT_EQ(star.path(), "*");
  EXPECT_EQ(star.authority(), "");
}

TEST(RequestParserChunks, SizeOverflowIs400EvenWithABodyLimit) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (uint64_t limit : {uint64_t{0}, uint64_t{16}, uint64_t{1} << 40}) {
    for (bool bytes : {false, true}) {
      RequestParser p({.max_body_bytes = limit});
      EXPECT_EQ(run(p, head + "1ffffffffffffffff\r\n", nullptr, bytes), Result::kError);
      EXPECT_EQ(p.error_status(), 400) << limit << ": " << p.error_reason();
    }
  }
  RequestParser junk({.max_body_bytes = 16});  // over the limit but malformed: 400 first
  EXPECT_EQ(run(junk, head + "ffffffffz\r\n"), Result::kError);
  EXPECT_EQ(junk.error_status(), 400);
  // A size that fits but passes the limit is still 413.
  RequestParser big({.max_body_bytes = 16});
  EXPECT_EQ(run(big, head + "ffffffffffffffff\r\n"), Result::kError);
  EXPECT_EQ(big.error_status(), 413);
}

TEST(RequestParserChunks, LeadingZerosAreBounded) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string body;
  RequestParser ok({});  // 32 digits: padded, accepted
  EXPECT_EQ(run(ok, head + std::string(31, '0') + "1\r\nx\r\n0\r\n\r\n", &body),
            Result::kMessageComplete);
  EXPECT_EQ(body, "x");
  for (bool bytes : {false, true}) {
    RequestParser p({});
    EXPECT_EQ(run(p, head + std::string(100000, '0'), nullptr, bytes), Result::kError);
    EXPECT_EQ(p.error_status(), 400) << p.error_reason();
  }
  RequestParser ws({});  // whitespace after the size is bounded too
  EXPECT_EQ(run(ws, head + "1" + std::string(100000, ' ')), Result::kError);
  EXPECT_EQ(ws.error_status(), 400);
}

TEST(RequestParserExpect, IgnoredOnHttp10) {
  RequestParser p11({});
  EXPECT_EQ(
      run(p11, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
      Result::kHeadComplete);
  EXPECT_TRUE(p11.expect_continue());
  RequestParser p10({});
  EXPECT_EQ(run(p10, "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
            Result::kHeadComplete);
  EXPECT_FALSE(p10.expect_continue());
}

TEST(RequestParserHeadStarted, OnlyBetweenTheFirstByteAndTheEndOfAHead) {
  RequestParser p({});
  EXPECT_FALSE(p.head_started());
  EXPECT_EQ(run(p, "GET / HTTP/1.1\r\nHo"), Result::kIncomplete);
  EXPECT_TRUE(p.head_started());
  EXPECT_EQ(run(p, "st: h\r\n\r\n"), Result::kMessageComplete);
  EXPECT_FALSE(p.head_started());  // complete: nothing of the next head yet
  p.reset();
  EXPECT_FALSE(p.head_started());
}

}  // namespace
}  // namespace aiowsgi::worker

namespace aiowsgi::worker {
namespace {

// The version is matched in one step when a read holds all of it, byte by byte otherwise:
// both must agree on every version, whole or split anywhere.
TEST(RequestParserVersion, SameVerdictWholeAndSplitAtEveryByte) {
  for (std::string_view version :
       {"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/1.10", "HTTP/1", "HTXP/1.1",
        "http/1.1", "HTTP/1.x", "HTTP/a.1", "HTTP/1,1", "HTTP/1.1 ", "HTTP/1.1\n"}) {
    const std::string in = "GET / " + std::string(version) + "\r\nHost: h\r\n\r\n";
    RequestParser whole({});
    const Result expected = run(whole, in);
    for (size_t cut = 1; cut < in.size(); ++cut) {
      RequestParser p({});
      Result r = run(p, in.substr(0, cut));
      if (r == Result::kIncomplete) r = run(p, in.substr(cut));
      EXPECT_EQ(r, expected) << version << " cut at " << cut;
      EXPECT_EQ(p.error_status(), whole.error_status()) << version << " cut at " << cut;
      if (r != Result::kError) {
        EXPECT_EQ(p.http_minor(), whole.http_minor()) << version;
      }
    }
    RequestParser bytes({});
    EXPECT_EQ(run(bytes, in, nullptr, true), expected) << version;
  }
  RequestParser ok({});
  EXPECT_EQ(run(ok, "GET / HTTP/1.0\r\n\r\n"), Result::kMessageComplete);
  EXPECT_EQ(ok.http_minor(), 0);
  RequestParser bad({});
  EXPECT_EQ(run(bad, "GET / HTTP/1.x\r\nHost: h\r\n\r\n"), Result::kError);
  EXPECT_EQ(bad.error_status(), 400);
}

// RFC 9110 9.1: methods are an open set of tokens, case-sensitive, passed on as sent; the body
// is framed as for any method.
TEST(RequestParserMethods, AnyTokenIsServedWithItsBody) {
  for (const char* method : {"QUERY", "PURGE", "MKCALENDAR", "FOO-BAR", "get", "M-SEARCH",
                             "!#$%&'*+-.^_`|~09azAZ", "PROPFIND", "connect"}) {
    for (bool byte_by_byte : {false, true}) {
      RequestParser p({});
      std::string body;
      const std::string req = std::string(method) +
                              " /contacts?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
                              "hello";
      ASSERT_EQ(run(p, req, &body, byte_by_byte), Result::kMessageComplete) << method;
      EXPECT_EQ(p.method(), method);
      EXPECT_EQ(p.path(), "/contacts");
      EXPECT_EQ(p.query(), "x=1");
      EXPECT_EQ(body, "hello");
      EXPECT_FALSE(p.upgrade()) << method;  // "connect" is not CONNECT
    }
    RequestParser c({});
    std::string body;
    const std::string chunked = std::string(method) +
                                " / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "3\r\nabc\r\n0\r\n\r\n";
    ASSERT_EQ(run(c, chunked, &body), Result::kMessageComplete) << method;
    EXPECT_EQ(body, "abc");
  }
}

TEST(RequestParserMethods, ConnectKeepsItsRules) {
  RequestParser p({});
  ASSERT_EQ(run(p, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
            Result::kMessageComplete);
  EXPECT_EQ(p.method(), "CONNECT");
  EXPECT_EQ(p.target(), "example.com:443");
  EXPECT_TRUE(p.upgrade());  // the rest of the stream is not HTTP
  RequestParser v6({});
  EXPECT_EQ(run(v6, "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"),
            Result::kMessageComplete);
  for (const char* bad :
       {"CONNECT [::1] HTTP/1.1\r\nHost: h\r\n\r\n", "CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"}) {
    RequestParser q({});
    EXPECT_EQ(run(q, bad), Result::kError) << bad;
    EXPECT_EQ(q.error_status(), 400) << bad;
  }
  // Asterisk-form stays OPTIONS only, whatever other token is used.
  RequestParser star({});
  EXPECT_EQ(run(star, "QUERY * HTTP/1.1\r\nHost: h\r\n\r\n"), Result::kError);
}

TEST(RequestParserMethods, NonTokenMethodIs400WholeAndByteByByte) {
  for (const char* bad : {"GE(T", "GET@", "G\"T", "G{T", "G\x80T", "GET,POST", "[GET]"}) {
    const std::string req = std::string(bad) + " / HTTP/1.1\r\nHost: h\r\n\r\n";
    for (bool byte_by_byte : {false, true}) {
      RequestParser p({});
      EXPECT_EQ(run(p, req, nullptr, byte_by_byte), Result::kError) << bad;
      EXPECT_EQ(p.error_status(), 400) << bad;
    }
  }
}

// RFC 9110 5.6.1, 5.5: OWS is SP or HTAB, around every list element and field value.
TEST(RequestParserOws, TabTrimmedLikeSpaceInEveryComparedField) {
  struct Case {
    const char* fields;
    bool keep_alive, chunked, expect_continue, upgrade;
    std::optional<uint64_t> length;
  };
  const Case cases[] = {
      {"Connection: close\t\r\n", false, false, false, false, {}},
      {"Connection:\tclose\r\n", false, false, false, false, {}},
      {"Connection: keep-alive,\tclose\t\r\n", false, false, false, false, {}},
      {"Connection: foo ,\t close\r\n", false, false, false, false, {}},
      {"Connection: closed\r\n", true, false, false, false, {}},
      {"Content-Length: 3\t\r\n", true, false, false, false, 3},
      {"Content-Length:\t3 \t\r\n", true, false, false, false, 3},
      {"Transfer-Encoding: chunked\t\r\n", true, true, false, false, {}},
      {"Transfer-Encoding:\tChunked \r\n", true, true, false, false, {}},
      {"Expect: 100-continue\t\r\nContent-Length: 3\r\n", true, false, true, false, 3},
      {"Expect:\t100-continue , foo\r\nContent-Length: 3\r\n", true, false, true, false, 3},
      {"Connection: Upgrade\t\r\nUpgrade:\twebsocket\t\r\n", true, false, false, true, {}},
      {"Connection:\tkeep-alive,\tupgrade\r\nUpgrade: websocket\r\n", true, false, false, true, {}},
      {"Connection: upgrade\r\nUpgrade: \t\r\n", true, false, false, false, {}},
  };
  for (const Case& c : cases) {
    const std::string req = std::string("PUT /url HTTP/1.1\r\nHost: example.com\r\n") + c.fields +
                            "\r\n" + (c.chunked ? "3\r\nabc\r\n0\r\n\r\n" : "abc");
    for (bool byte_by_byte : {false, true}) {
      RequestParser p({});
      std::string body;
      ASSERT_EQ(run(p, req, &body, byte_by_byte), Result::kMessageComplete) << c.fields;
      EXPECT_EQ(p.keep_alive(), c.keep_alive) << c.fields;
      EXPECT_EQ(p.chunked(), c.chunked) << c.fields;
      EXPECT_EQ(p.expect_continue(), c.expect_continue) << c.fields;
      EXPECT_EQ(p.upgrade(), c.upgrade) << c.fields;
      EXPECT_EQ(p.content_length(), c.length) << c.fields;
      EXPECT_EQ(body, c.length || c.chunked ? "abc" : "") << c.fields;
    }
  }
}

TEST(RequestParserOws, CloseWinsOverKeepAliveOnBothVersions) {
  for (const char* v : {"HTTP/1.0", "HTTP/1.1"}) {
    RequestParser p({});
    const std::string req =
        std::string("GET / ") + v + "\r\nHost: h\r\nConnection: keep-alive,\tclose\r\n\r\n";
    ASSERT_EQ(run(p, req), Result::kMessageComplete);
    EXPECT_FALSE(p.keep_alive()) << v;
  }
}

// RFC 9112 3.2: Host = uri-host [":" port]; an invalid value is a 400.
TEST(RequestParserHost, ValidAndInvalidValues) {
  const char* valid[] = {"example.com",
                         "127.0.0.1:8080",
                         "[::1]:80",
                         "[::1]",
                         "[2001:db8::7]",
                         "[::ffff:192.0.2.1]:443",
                         "[v1.fe80::a+en1]",
                         "xn--bcher-kva.example",
                         "example.com:",  // port = *DIGIT
                         "h%41st",
                         "a-b_c~d.e!$&'()*+,;=",
                         ""};  // kept as before: an empty Host passes (RFC 9110 7.2)
  const char* invalid[] = {"###",      "a b",       "[::1",      "a:b",    "[::1]x",
                           "[::1]:8a", "a:80:90",   "user@host", "h/x",    "h?x",
                           "[:::1::]", "[1.2.3.4]", "[v1]",      "[vx.a]", "%4",
                           "h%zz",     ":80",       "[]",        "h\"",    "\xc3\xa9.fr"};
  for (const char* host : valid) {
    RequestParser p({});
    const std::string req = std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n";
    EXPECT_EQ(run(p, req), Result::kMessageComplete) << host << ": " << p.error_reason();
    EXPECT_EQ(p.header_value(0), host);
  }
  for (const char* host : invalid) {
    for (bool byte_by_byte : {false, true}) {
      RequestParser p({});
      const std::string req = std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n";
      EXPECT_EQ(run(p, req, nullptr, byte_by_byte), Result::kError) << host;
      EXPECT_EQ(p.error_status(), 400) << host;
    }
  }
  // Missing Host: 400 in HTTP/1.1, allowed in HTTP/1.0, as before.
  RequestParser none11({});
  EXPECT_EQ(run(none11, "GET / HTTP/1.1\r\n\r\n"), Result::kError);
  RequestParser none10({});
  EXPECT_EQ(run(none10, "GET / HTTP/1.0\r\n\r\n"), Result::kMessageComplete);
}

}  // namespace
}  // namespace aiowsgi::worker
