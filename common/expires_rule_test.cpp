#include "common/expires_rule.h"

#include <gtest/gtest.h>

namespace aiowsgi {
namespace {

TEST(ExpiresRule, PatternThenSecondsAfterTheLastBlank) {
  Result<ExpiresRule> r = ExpiresRule::parse("\\.css$ 3600");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->pattern, "\\.css$");
  EXPECT_EQ(r->seconds, 3600);
  r = ExpiresRule::parse("  /a b/  \t 60 ");  // blanks inside the pattern stay
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pattern, "/a b/");
  EXPECT_EQ(r->text(), "/a b/ 60");
  r = ExpiresRule::parse("text/css 0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seconds, 0);
  EXPECT_EQ(ExpiresRule::parse("x 315360000")->seconds, kMaxExpires);
}

TEST(ExpiresRule, Refused) {
  EXPECT_EQ(ExpiresRule::parse("3600").status().message(), "must be \"PATTERN SECONDS\"");
  EXPECT_EQ(ExpiresRule::parse("").status().message(), "must be \"PATTERN SECONDS\"");
  EXPECT_EQ(ExpiresRule::parse("  60").status().message(), "must be \"PATTERN SECONDS\"");
  EXPECT_EQ(ExpiresRule::parse("\\.css$ 1h").status().message(), "'1h' is not a number of seconds");
  EXPECT_EQ(ExpiresRule::parse("\\.css$ -1").status().message(), "seconds must be 0..315360000");
  EXPECT_EQ(ExpiresRule::parse("\\.css$ 315360001").status().message(),
            "seconds must be 0..315360000");
  EXPECT_FALSE(ExpiresRule::parse("\\.css$ 99999999999999999999").ok());
}

}  // namespace
}  // namespace aiowsgi
