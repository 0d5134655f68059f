#include "worker/protocol/static_path.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::worker::static_path {
namespace {

TEST(StaticRelativePath, KeepsPlainSegments) {
  EXPECT_EQ(relative_path("css/site.css"), "css/site.css");
  EXPECT_EQ(relative_path("/css//./site.css"), "css/site.css");
  EXPECT_EQ(relative_path("a\\b"), "a\\b");  // a backslash is an ordinary byte
  EXPECT_EQ(relative_path("..a/b.."), "..a/b..");
}

TEST(StaticRelativePath, RefusesTraversalNulAndTheFolderItself) {
  EXPECT_EQ(relative_path(".."), std::nullopt);
  EXPECT_EQ(relative_path("../etc/passwd"), std::nullopt);
  EXPECT_EQ(relative_path("a/../../x"), std::nullopt);
  EXPECT_EQ(relative_path("a/.."), std::nullopt);
  EXPECT_EQ(relative_path(std::string_view("a\0b", 3)), std::nullopt);
  EXPECT_EQ(relative_path(""), std::nullopt);
  EXPECT_EQ(relative_path("/./"), std::nullopt);
}

TEST(StaticRange, SingleForms) {
  Range r = parse_range("bytes=10-19", 100);
  EXPECT_EQ(r.kind, Range::Kind::kSingle);
  EXPECT_EQ(r.first, 10u);
  EXPECT_EQ(r.last, 19u);
  r = parse_range("bytes=90-", 100);
  EXPECT_EQ(r.kind, Range::Kind::kSingle);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  r = parse_range("bytes=-10", 100);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  r = parse_range("bytes=-1000", 100);  // more than the file: all of it
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  r = parse_range("Bytes=5-99999999999999999999999", 100);  // clamped, saturating
  EXPECT_EQ(r.kind, Range::Kind::kSingle);
  EXPECT_EQ(r.last, 99u);
}

TEST(StaticRange, UnsatisfiableAndIgnored) {
  EXPECT_EQ(parse_range("bytes=100-", 100).kind, Range::Kind::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 100).kind, Range::Kind::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0).kind, Range::Kind::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=-5", 0).kind, Range::Kind::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 100).kind, Range::Kind::kNone);  // multi: whole file
  EXPECT_EQ(parse_range("bytes=5-1", 100).kind, Range::Kind::kNone);
  EXPECT_EQ(parse_range("bytes=a-b", 100).kind, Range::Kind::kNone);
  EXPECT_EQ(parse_range("bytes=1", 100).kind, Range::Kind::kNone);
  EXPECT_EQ(parse_range("items=1-2", 100).kind, Range::Kind::kNone);
  EXPECT_EQ(parse_range("", 100).kind, Range::Kind::kNone);
  EXPECT_EQ(parse_range("bytes=0-1,", 100).kind, Range::Kind::kSingle);  // empty list element
}

TEST(StaticConditionals, NoneMatch) {
  std::string etag = make_etag(12, 34, 56);
  EXPECT_EQ(etag, "\"c-22-38\"");
  EXPECT_TRUE(none_match_hits(etag, etag));
  EXPECT_TRUE(none_match_hits("\"a\", W/" + etag, etag));
  EXPECT_TRUE(none_match_hits(" * ", etag));
  EXPECT_FALSE(none_match_hits("\"c-22-39\"", etag));
  EXPECT_FALSE(none_match_hits("", etag));
}

TEST(StaticConditionals, IfRange) {
  std::string etag = make_etag(1, 2, 3);
  EXPECT_TRUE(if_range_allows(etag, etag, 0));
  EXPECT_FALSE(if_range_allows("W/" + etag, etag, 0));
  EXPECT_FALSE(if_range_allows("\"other\"", etag, 0));
  EXPECT_TRUE(if_range_allows("Sun, 06 Nov 1994 08:49:37 GMT", etag, 784111777));
  EXPECT_FALSE(if_range_allows("Sun, 06 Nov 1994 08:49:38 GMT", etag, 784111777));
}

TEST(StaticDates, ThreeFormsAndRoundTrip) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date(format_http_date(1700000000)), 1700000000);
  EXPECT_EQ(parse_http_date("garbage"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date(""), std::nullopt);
}

TEST(StaticAcceptEncoding, Gzip) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("br, GZIP;q=0.5"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("gzip;q=0.001"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip; q=0.000"));
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *"));  // the explicit entry wins over "*"
  EXPECT_FALSE(accepts_gzip("identity, br"));
  EXPECT_FALSE(accepts_gzip(""));
}

}  // namespace
}  // namespace aiowsgi::worker::static_path
