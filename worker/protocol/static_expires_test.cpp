#include "worker/protocol/static_expires.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aiowsgi::worker {
namespace {

using Target = ExpiryRules::Target;
using Strings = std::vector<std::string>;

TEST(ExpiryRules, FirstMatchingUriRuleWins) {
  ExpiryRules rules;
  ASSERT_TRUE(
      rules.add(Target::kUri, {"^/static/.*\\.css$ 60", "^/static/ 600", "\\.css$ 9"}).ok());
  EXPECT_EQ(rules.match("/srv/s/a.css", "/static/a.css", "text/css"), 60);
  EXPECT_EQ(rules.match("/srv/s/a.js", "/static/a.js", "text/javascript"), 600);
  EXPECT_EQ(rules.match("/srv/s/a.css", "/static/a.css?v=2", "text/css"), 600);  // the query
  EXPECT_EQ(rules.match("/srv/m/a.css", "/media/a.css", "text/css"), 9);
  EXPECT_EQ(rules.match("/srv/m/a.js", "/media/a.js", "text/javascript"), std::nullopt);
}

TEST(ExpiryRules, FileRulesThenUriRulesThenTypeRules) {
  ExpiryRules rules;
  // Added out of order: the order of the targets decides, then the order within each list.
  ASSERT_TRUE(rules.add(Target::kType, {"image/png 3", "text/css 4"}).ok());
  ASSERT_TRUE(rules.add(Target::kUri, {"^/static/img/ 2"}).ok());
  ASSERT_TRUE(rules.add(Target::kFile, {"^/srv/site/img/logo 1"}).ok());
  EXPECT_EQ(rules.match("/srv/site/img/logo.png", "/static/img/logo.png", "image/png"), 1);
  EXPECT_EQ(rules.match("/srv/site/img/icon.png", "/static/img/icon.png", "image/png"), 2);
  EXPECT_EQ(rules.match("/srv/site/icon.png", "/static/icon.png", "image/png"), 3);
  EXPECT_EQ(rules.match("/srv/site/a.css", "/static/a.css", "Text/CSS; charset=utf-8"), 4);
  EXPECT_EQ(rules.match("/srv/site/a.js", "/static/a.js", "text/javascript"), std::nullopt);
}

TEST(ExpiryRules, TypeRulesCompareTheWholeMediaType) {
  ExpiryRules rules;
  ASSERT_TRUE(rules.add(Target::kType, {"TEXT/css 5"}).ok());
  EXPECT_EQ(rules.match("f", "u", "text/css"), 5);
  EXPECT_EQ(rules.match("f", "u", "text/cssx"), std::nullopt);
  EXPECT_EQ(rules.match("f", "u", "text/"), std::nullopt);
  EXPECT_EQ(rules.match("f", "u", ""), std::nullopt);
}

TEST(ExpiryRules, ZeroSecondsIsARuleToo) {
  ExpiryRules rules;
  ASSERT_TRUE(rules.add(Target::kUri, {"\\.html$ 0", ". 86400"}).ok());
  EXPECT_EQ(rules.match("f", "/index.html", "text/html"), 0);
  EXPECT_EQ(rules.match("f", "/a.css", "text/css"), 86400);
}

TEST(ExpiryRules, BadRulesAreLeftOutWithTheReason) {
  ExpiryRules rules;
  EXPECT_TRUE(rules.empty());
  Status st = rules.add(Target::kUri, Strings{"(x 60", "nosecs", "\\.css$ 7"});
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("(x 60: invalid regular expression: ", 0), 0u) << st.message();
  EXPECT_FALSE(rules.empty());
  EXPECT_EQ(rules.match("f", "/a.css", "text/css"), 7);
}

TEST(ExpiryFields, MaxAgeAndAnExpiresDateThatMuchLater) {
  EXPECT_EQ(expiry_fields(3600, 784111777 - 3600),
            "Cache-Control: max-age=3600\r\nExpires: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
  EXPECT_EQ(expiry_fields(0, 784111777),
            "Cache-Control: max-age=0\r\nExpires: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
}

}  // namespace
}  // namespace aiowsgi::worker
