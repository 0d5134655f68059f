// Tests for JoinedHeaders: grouping, order, separators, and that joining is not quadratic.

#include "worker/protocol/header_fields.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs grouped(const Pairs& in) {
  std::vector<JoinedHeaders::Field> fields;
  for (const auto& [n, v] : in) fields.push_back({n, v});
  JoinedHeaders j;
  j.group(fields);
  Pairs out;
  for (const auto& f : j.fields()) out.emplace_back(f.name, f.value);
  return out;
}

TEST(JoinedHeaders, GroupsCaseInsensitivelyInFirstAppearanceOrder) {
  const Pairs in = {{"Host", "h"},   {"X-A", "1"}, {"Accept", "a"}, {"x-a", "2"},
                    {"X-B", ""},     {"X-A", "3"}, {"ACCEPT", "b"}, {"Cookie", "c=1"},
                    {"cookie", "d"}, {"X-B", "z"}};
  const Pairs want = {
      {"Host", "h"}, {"X-A", "1, 2, 3"}, {"Accept", "a, b"}, {"X-B", ", z"}, {"Cookie", "c=1, d"}};
  EXPECT_EQ(grouped(in), want);
}

TEST(JoinedHeaders, NoRepeatsKeepsEverythingAsIs) {
  const Pairs in = {{"b", "2"}, {"a", "1"}, {"C", "3"}};
  EXPECT_EQ(grouped(in), in);
  EXPECT_EQ(grouped({}), Pairs{});
  EXPECT_EQ(grouped({{"a", "1"}}), (Pairs{{"a", "1"}}));
  // Names that only differ past a common prefix, or by length, stay apart.
  EXPECT_EQ(grouped({{"X-A", "1"}, {"X-AB", "2"}, {"x-a", "3"}}),
            (Pairs{{"X-A", "1, 3"}, {"X-AB", "2"}}));
}

TEST(JoinedHeaders, ReusedAcrossRequests) {
  JoinedHeaders j;
  std::vector<JoinedHeaders::Field> a = {{"A", "1"}, {"a", "2"}};
  j.group(a);
  ASSERT_EQ(j.fields().size(), 1u);
  EXPECT_EQ(j.fields()[0].value, "1, 2");
  std::vector<JoinedHeaders::Field> b = {{"B", "x"}};
  j.group(b);
  ASSERT_EQ(j.fields().size(), 1u);
  EXPECT_EQ(j.fields()[0].name, "B");
  EXPECT_EQ(j.fields()[0].value, "x");
}

TEST(JoinedHeaders, HundredThousandRepeatsAreJoinedInLinearTime) {
  // A real head through the parser: 100,000 "a: x" lines (about 600 KB).
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  constexpr size_t kRepeats = 100000;
  for (size_t i = 0; i < kRepeats; ++i) head += (i % 2 != 0) ? "A: x\r\n" : "a: x\r\n";
  head += "\r\n";
  RequestParser p({.max_header_bytes = head.size(), .max_header_fields = 0});
  size_t consumed = 0;
  ASSERT_EQ(p.feed_head(head.data(), head.size(), &consumed), RequestParser::Result::kHeadComplete);
  ASSERT_EQ(p.header_count(), kRepeats + 1);

  JoinedHeaders j;
  const auto t0 = std::chrono::steady_clock::now();
  j.group(p);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ measure  ] grouping %zu repeated fields took %.2f ms\n", kRepeats, ms);
  // Linear work is a few ms; a join per repeat copies ~300 KB 100,000 times (tens of seconds).
  EXPECT_LT(ms, 1000.0);
  ASSERT_EQ(j.fields().size(), 2u);
  EXPECT_EQ(j.fields()[0].name, "Host");
  EXPECT_EQ(j.fields()[1].name, "a");
  const std::string_view v = j.fields()[1].value;
  EXPECT_EQ(v.size(), kRepeats * 3 - 2);  // "x, x, ..., x"
  EXPECT_EQ(v.substr(0, 7), "x, x, x");
  EXPECT_EQ(v.find("x, x"), 0u);
  EXPECT_EQ(v.back(), 'x');
}

}  // namespace
}  // namespace aiowsgi::worker
