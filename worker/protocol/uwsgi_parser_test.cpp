// Tests for UwsgiParser. Inputs sit at the very end of an mmap'd page followed by a
// PROT_NONE page, so any over-read crashes the test (picohttpparser's trick).

#include "worker/protocol/uwsgi_parser.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/guarded_buffer.h"

namespace aiowsgi::worker {
namespace {

using Result = UwsgiParser::Result;
using Vars = std::vector<std::pair<std::string, std::string>>;

using aiowsgi::test_support::GuardedBuffer;

void put_u16(std::string* out, size_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
}

std::string vars_block(const Vars& vars) {
  std::string block;
  for (const auto& [k, v] : vars) {
    put_u16(&block, k.size());
    block += k;
    put_u16(&block, v.size());
    block += v;
  }
  return block;
}

// A packet as nginx builds it: modifier1, datasize, modifier2, then the vars block.
std::string packet(const std::string& block, uint8_t modifier1 = 0, uint8_t modifier2 = 0) {
  std::string out;
  out.push_back(static_cast<char>(modifier1));
  put_u16(&out, block.size());
  out.push_back(static_cast<char>(modifier2));
  return out + block;
}

std::string packet(const Vars& vars) { return packet(vars_block(vars)); }

const Vars kGet = {{"REQUEST_METHOD", "GET"},    {"REQUEST_URI", "/a/b?x=1"},
                   {"PATH_INFO", "/a/b"},        {"QUERY_STRING", "x=1"},
                   {"CONTENT_LENGTH", ""},       {"SERVER_PROTOCOL", "HTTP/1.1"},
                   {"HTTP_HOST", "example.org"}, {"HTTP_X_EMPTY", ""}};

Vars vars_of(const UwsgiParser& p) {
  Vars out;
  for (size_t i = 0; i < p.var_count(); ++i) {
    out.emplace_back(std::string(p.var_name(i)), std::string(p.var_value(i)));
  }
  return out;
}

// Feeds all of |in| at once from a guarded copy.
Result feed_all(UwsgiParser& p, std::string_view in, size_t* consumed) {
  GuardedBuffer g(in);
  return p.feed(g.data(), g.size(), consumed);
}

UwsgiParser::Limits default_limits() { return UwsgiParser::Limits{}; }

TEST(UwsgiParser, ParsesAGetPacket) {
  UwsgiParser p(default_limits());
  const std::string in = packet(kGet);
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, in, &consumed), Result::kHeadComplete);
  EXPECT_EQ(consumed, in.size());
  EXPECT_EQ(vars_of(p), kGet);
  EXPECT_EQ(p.find("HTTP_HOST"), "example.org");
  EXPECT_EQ(p.find("HTTP_X_EMPTY"), "");
  EXPECT_EQ(p.find("HTTP_NOPE"), std::nullopt);
  // nginx's uwsgi_params sends an empty CONTENT_LENGTH for a request without a body.
  EXPECT_EQ(p.content_length(), std::nullopt);
  EXPECT_EQ(p.modifier2(), 0);
}

TEST(UwsgiParser, StopsAtTheEndOfThePacketAndLeavesTheBody) {
  UwsgiParser p(default_limits());
  const std::string head = packet({{"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", "5"}});
  const std::string in = head + "hello";
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, in, &consumed), Result::kHeadComplete);
  EXPECT_EQ(consumed, head.size());
  EXPECT_EQ(p.content_length(), 5u);
  // Further calls repeat the verdict and consume nothing.
  EXPECT_EQ(p.feed(in.data() + consumed, in.size() - consumed, &consumed), Result::kHeadComplete);
  EXPECT_EQ(consumed, 0u);
}

// The web server in front has parsed the request line: whatever method it passes (extension
// methods included) reaches the app as sent, like over HTTP.
TEST(UwsgiParser, PassesAnyMethodThrough) {
  for (const char* method : {"QUERY", "PURGE", "MKCALENDAR", "FOO-BAR", "get"}) {
    UwsgiParser p(default_limits());
    const std::string head = packet({{"REQUEST_METHOD", method}, {"CONTENT_LENGTH", "5"}});
    size_t consumed = 0;
    ASSERT_EQ(feed_all(p, head + "hello", &consumed), Result::kHeadComplete) << method;
    EXPECT_EQ(p.find("REQUEST_METHOD"), method);
    EXPECT_EQ(p.content_length(), 5u);
  }
}

TEST(UwsgiParser, EveryPrefixIsIncomplete) {
  const std::string in = packet(kGet);
  for (size_t n = 0; n < in.size(); ++n) {
    UwsgiParser p(default_limits());
    size_t consumed = 99;
    ASSERT_EQ(feed_all(p, std::string_view(in).substr(0, n), &consumed), Result::kIncomplete)
        << "prefix " << n;
    EXPECT_EQ(consumed, n);
  }
}

TEST(UwsgiParser, ByteByByteGivesTheSameResult) {
  const std::string in = packet(kGet);
  UwsgiParser p(default_limits());
  Result r = Result::kIncomplete;
  size_t total = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    GuardedBuffer g(std::string_view(in).substr(i, 1));
    size_t consumed = 0;
    r = p.feed(g.data(), 1, &consumed);
    total += consumed;
    if (i + 1 < in.size()) {
      ASSERT_EQ(r, Result::kIncomplete) << "byte " << i;
    }
  }
  ASSERT_EQ(r, Result::kHeadComplete);
  EXPECT_EQ(total, in.size());
  EXPECT_EQ(vars_of(p), kGet);
}

TEST(UwsgiParser, EverySplitInTwoGivesTheSameResult) {
  const std::string body = "xyz";
  const std::string head = packet({{"REQUEST_METHOD", "PUT"}, {"CONTENT_LENGTH", "3"}});
  const std::string in = head + body;
  for (size_t split = 0; split <= in.size(); ++split) {
    UwsgiParser p(default_limits());
    size_t c1 = 0, c2 = 0;
    Result r = feed_all(p, std::string_view(in).substr(0, split), &c1);
    if (split < head.size()) {
      ASSERT_EQ(r, Result::kIncomplete) << split;
      ASSERT_EQ(c1, split);
      r = feed_all(p, std::string_view(in).substr(split), &c2);
    }
    ASSERT_EQ(r, Result::kHeadComplete) << split;
    EXPECT_EQ(c1 + c2, head.size()) << split;
    EXPECT_EQ(p.find("REQUEST_METHOD"), "PUT");
    EXPECT_EQ(p.content_length(), 3u);
  }
}

TEST(UwsgiParser, ResetServesTheNextPacket) {
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, packet(kGet), &consumed), Result::kHeadComplete);
  p.reset();
  const Vars second = {{"REQUEST_METHOD", "DELETE"}, {"CONTENT_LENGTH", "0"}};
  ASSERT_EQ(feed_all(p, packet(second), &consumed), Result::kHeadComplete);
  EXPECT_EQ(vars_of(p), second);
  EXPECT_EQ(p.content_length(), 0u);
  // An error is cleared by reset() too.
  p.reset();
  ASSERT_EQ(feed_all(p, packet(Vars{{"PATH_INFO", "/"}}), &consumed), Result::kError);
  p.reset();
  ASSERT_EQ(feed_all(p, packet(kGet), &consumed), Result::kHeadComplete);
  EXPECT_EQ(p.error_status(), 0);
}

TEST(UwsgiParser, KeepsDuplicateNamesInOrder) {
  const Vars vars = {{"REQUEST_METHOD", "GET"}, {"HTTP_COOKIE", "a=1"}, {"HTTP_COOKIE", "b=2"}};
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, packet(vars), &consumed), Result::kHeadComplete);
  EXPECT_EQ(vars_of(p), vars);
  EXPECT_EQ(p.find("HTTP_COOKIE"), "a=1");
}

TEST(UwsgiParser, AcceptsHighBytesAndLongValues) {
  const Vars vars = {{"REQUEST_METHOD", "GET"},
                     {"PATH_INFO", "/caf\xc3\xa9"},
                     {"HTTP_X_BIG", std::string(60000, 'v')}};
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, packet(vars), &consumed), Result::kHeadComplete);
  EXPECT_EQ(vars_of(p), vars);
}

TEST(UwsgiParser, ContentLength) {
  struct Case {
    std::string value;
    int status;  // 0: accepted
    std::optional<uint64_t> length;
  };
  const Case cases[] = {
      {"0", 0, 0u},
      {"12", 0, 12u},
      {"007", 0, 7u},
      {"9999999999999999999", 0, 9999999999999999999u},
      {"", 0, std::nullopt},
      {"10000000000000000000", 400, std::nullopt},  // 20 digits
      {"-1", 400, std::nullopt},
      {"+1", 400, std::nullopt},
      {" 1", 400, std::nullopt},
      {"1 ", 400, std::nullopt},
      {"0x10", 400, std::nullopt},
      {"1,1", 400, std::nullopt},
  };
  for (const Case& c : cases) {
    UwsgiParser p(default_limits());
    size_t consumed = 0;
    Result r =
        feed_all(p, packet({{"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", c.value}}), &consumed);
    if (c.status == 0) {
      ASSERT_EQ(r, Result::kHeadComplete) << "'" << c.value << "'";
      EXPECT_EQ(p.content_length(), c.length) << "'" << c.value << "'";
    } else {
      ASSERT_EQ(r, Result::kError) << "'" << c.value << "'";
      EXPECT_EQ(p.error_status(), c.status) << "'" << c.value << "'";
    }
  }
}

TEST(UwsgiParser, ConflictingContentLengthsAre400) {
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  const Vars same = {{"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", "4"}, {"CONTENT_LENGTH", "4"}};
  ASSERT_EQ(feed_all(p, packet(same), &consumed), Result::kHeadComplete);
  EXPECT_EQ(p.content_length(), 4u);
  p.reset();
  const Vars differ = {
      {"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", "4"}, {"CONTENT_LENGTH", "40"}};
  ASSERT_EQ(feed_all(p, packet(differ), &consumed), Result::kError);
  EXPECT_EQ(p.error_status(), 400);
}

TEST(UwsgiParser, BodyLimitIs413) {
  UwsgiParser::Limits limits;
  limits.max_body_bytes = 100;
  UwsgiParser p(limits);
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, packet({{"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", "100"}}), &consumed),
            Result::kHeadComplete);
  p.reset();
  ASSERT_EQ(feed_all(p, packet({{"REQUEST_METHOD", "POST"}, {"CONTENT_LENGTH", "101"}}), &consumed),
            Result::kError);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(UwsgiParser, HeaderLimitIs431FromTheFourByteHeader) {
  UwsgiParser::Limits limits;
  limits.max_header_bytes = 64;
  const std::string small = packet({{"REQUEST_METHOD", "GET"}, {"PATH_INFO", "/"}});
  ASSERT_LE(small.size() - UwsgiParser::kHeaderSize, 64u);
  {
    UwsgiParser p(limits);
    size_t consumed = 0;
    EXPECT_EQ(feed_all(p, small, &consumed), Result::kHeadComplete);
  }
  // Exactly the limit passes, one byte more fails as soon as the size is known.
  std::string at_limit_block = vars_block({{"REQUEST_METHOD", "GET"}, {"HTTP_X", ""}});
  at_limit_block = vars_block(
      {{"REQUEST_METHOD", "GET"}, {"HTTP_X", std::string(64 - at_limit_block.size(), 'a')}});
  ASSERT_EQ(at_limit_block.size(), 64u);
  {
    UwsgiParser p(limits);
    size_t consumed = 0;
    EXPECT_EQ(feed_all(p, packet(at_limit_block), &consumed), Result::kHeadComplete);
  }
  const std::string big = packet(at_limit_block + std::string("\x01\x00X\x00\x00", 5));
  UwsgiParser p(limits);
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, std::string_view(big).substr(0, 4), &consumed), Result::kError);
  EXPECT_EQ(consumed, 4u);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(UwsgiParser, HeaderFieldLimitCountsHttpVars) {
  UwsgiParser::Limits limits;
  limits.max_header_fields = 3;
  Vars vars = {{"REQUEST_METHOD", "GET"}, {"PATH_INFO", "/"},  {"SERVER_NAME", "x"},
               {"HTTP_A", "1"},           {"HTTP_B", "2"},     {"HTTP_C", "3"},
               {"QUERY_STRING", ""},      {"REMOTE_ADDR", "1"}};
  {
    UwsgiParser p(limits);  // three HTTP_ vars and any number of other CGI variables
    size_t consumed = 0;
    EXPECT_EQ(feed_all(p, packet(vars), &consumed), Result::kHeadComplete);
  }
  vars.push_back({"HTTP_D", "4"});
  UwsgiParser p(limits);
  size_t consumed = 0;
  EXPECT_EQ(feed_all(p, packet(vars), &consumed), Result::kError);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(UwsgiParser, CgiVarNames) {
  for (const char* ok : {"REQUEST_METHOD", "HTTP_X_Y", "_private", "lower_case", "X1"}) {
    EXPECT_TRUE(is_cgi_var_name(ok)) << ok;
  }
  for (const char* bad : {"", "wsgi.input", "wsgi.url_scheme", "aiowsgi.core", "wsgi.errors",
                          "1ABC", "X-Y", "A B", "HTTP_X.Y"}) {
    EXPECT_FALSE(is_cgi_var_name(bad)) << bad;
  }
}

TEST(UwsgiParser, OtherModifier1Is501) {
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  // modifier1 5 is uWSGI's PSGI plugin: known from the first byte, before the rest arrives.
  ASSERT_EQ(feed_all(p, packet(vars_block(kGet), 5).substr(0, 4), &consumed), Result::kError);
  EXPECT_EQ(p.error_status(), 501);
}

TEST(UwsgiParser, Modifier2IsReported) {
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, packet(vars_block(kGet), 0, 7), &consumed), Result::kHeadComplete);
  EXPECT_EQ(p.modifier2(), 7);
}

TEST(UwsgiParser, MalformedPacketsAre400) {
  const std::string method = vars_block({{"REQUEST_METHOD", "GET"}});
  const std::string cases[] = {
      "",                               // no vars at all: no REQUEST_METHOD
      method + std::string("\x01", 1),  // half a name length
      method + std::string("\x05\x00"
                           "AB",
                           4),  // name runs past the block
      method + std::string("\x02\x00"
                           "AB",
                           4),  // value length missing
      method + std::string("\x02\x00"
                           "AB\x01",
                           5),  // half a value length
      method + std::string("\x02\x00"
                           "AB\x03\x00x",
                           7),                                    // value runs past the block
      method + std::string("\x00\x00\x01\x00x", 5),               // empty name
      method + vars_block({{"HTTP X", "1"}}),                     // space in a name
      method + vars_block({{"HTTP:X", "1"}}),                     // colon in a name
      method + vars_block({{std::string("A\0B", 3), "1"}}),       // NUL in a name
      method + vars_block({{"HTTP_X", std::string("a\0b", 3)}}),  // NUL in a value
      method + vars_block({{"HTTP_X", "a\r\nSet-Cookie: x=1"}}),  // CR LF in a value
      method + vars_block({{"HTTP_X", "a\nb"}}),                  // bare LF
      vars_block({{"REQUEST_METHOD", ""}}),                       // empty method
      vars_block({{"PATH_INFO", "/"}}),                           // no method
  };
  for (const std::string& block : cases) {
    UwsgiParser p(default_limits());
    size_t consumed = 0;
    const std::string in = packet(block);
    ASSERT_EQ(feed_all(p, in, &consumed), Result::kError) << testing::PrintToString(block);
    EXPECT_EQ(p.error_status(), 400) << testing::PrintToString(block);
    EXPECT_FALSE(p.error_reason().empty());
    // The verdict sticks until reset().
    EXPECT_EQ(p.feed(in.data(), in.size(), &consumed), Result::kError);
    EXPECT_EQ(consumed, 0u);
  }
}

TEST(UwsgiParser, EveryPrefixOfAMalformedPacketIsIncompleteOrTheSameError) {
  const std::string in = packet(vars_block({{"REQUEST_METHOD", "GET"}}) +
                                "\x09\x00"
                                "ABC");
  for (size_t n = 0; n < in.size(); ++n) {
    UwsgiParser p(default_limits());
    size_t consumed = 0;
    ASSERT_EQ(feed_all(p, std::string_view(in).substr(0, n), &consumed), Result::kIncomplete);
  }
  UwsgiParser p(default_limits());
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, in, &consumed), Result::kError);
  EXPECT_EQ(p.error_status(), 400);
}

TEST(UwsgiParser, DoesNotAllocateInTheSteadyState) {
  UwsgiParser p(default_limits());
  const std::string in = packet(kGet);
  size_t consumed = 0;
  ASSERT_EQ(feed_all(p, in, &consumed), Result::kHeadComplete);
  const char* storage = p.var_name(0).data();
  for (int i = 0; i < 100; ++i) {
    p.reset();
    ASSERT_EQ(p.feed(in.data(), in.size(), &consumed), Result::kHeadComplete);
    // The same buffer is reused: the names still live where they did the first time.
    ASSERT_EQ(p.var_name(0).data(), storage);
  }
}

}  // namespace
}  // namespace aiowsgi::worker
