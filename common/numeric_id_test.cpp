#include "common/numeric_id.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi {
namespace {

TEST(NumericId, DigitsInRangeAreIds) {
  uint32_t v = 7;
  EXPECT_EQ(parse_numeric_id("0", &v), IdText::kNumber);
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(parse_numeric_id("1000", &v), IdText::kNumber);
  EXPECT_EQ(v, 1000u);
  EXPECT_EQ(parse_numeric_id("000065534", &v), IdText::kNumber);
  EXPECT_EQ(v, 65534u);
  EXPECT_EQ(parse_numeric_id("4294967294", &v), IdText::kNumber);
  EXPECT_EQ(v, 4294967294u);
}

TEST(NumericId, LargeValuesNeverWrapToRoot) {
  uint32_t v = 7;
  EXPECT_EQ(parse_numeric_id("4294967295", &v), IdText::kOutOfRange);            // (uid_t)-1
  EXPECT_EQ(parse_numeric_id("4294967296", &v), IdText::kOutOfRange);            // 2^32: was uid 0
  EXPECT_EQ(parse_numeric_id("18446744073709551616", &v), IdText::kOutOfRange);  // 2^64
  EXPECT_EQ(parse_numeric_id(std::string(1000, '9'), &v), IdText::kOutOfRange);
  EXPECT_EQ(v, 7u);  // untouched on failure
}

TEST(NumericId, SignsJunkAndSpacesAreNames) {
  uint32_t v = 7;
  for (const char* s : {"-1", "+5", "12abc", " 12", "12 ", "0x10", "1e3", "www-data", ""}) {
    EXPECT_EQ(parse_numeric_id(s, &v), IdText::kName) << s;
  }
  EXPECT_EQ(v, 7u);
}

}  // namespace
}  // namespace aiowsgi
