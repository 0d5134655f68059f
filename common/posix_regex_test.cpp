#include "common/posix_regex.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi {
namespace {

bool matches(std::string_view pattern, std::string_view text) {
  Result<PosixRegex> re = PosixRegex::compile(pattern);
  EXPECT_TRUE(re.ok()) << pattern << ": " << re.status().message();
  return re.ok() && re->search(text);
}

TEST(PosixRegex, SearchesAnywhereUnlessAnchored) {
  EXPECT_TRUE(matches("\\.css$", "/static/site.css"));
  EXPECT_FALSE(matches("\\.css$", "/static/site.css?v=2"));
  EXPECT_TRUE(matches("/static/", "/x/static/a"));
  EXPECT_FALSE(matches("^/static/", "/x/static/a"));
  EXPECT_TRUE(matches("^/static/.*\\.(png|jpe?g)$", "/static/img/a.jpeg"));
  EXPECT_FALSE(matches("^/static/.*\\.(png|jpe?g)$", "/static/img/a.gif"));
  EXPECT_TRUE(matches("[0-9]{3}", "v123"));
  EXPECT_TRUE(matches("\\\\d", "a\\d"));  // an escaped backslash, then a plain 'd'
}

TEST(PosixRegex, TextIsDelimitedByItsSizeNotByNul) {
  EXPECT_TRUE(matches("b$", std::string_view("a\0b", 3)));
  EXPECT_FALSE(matches("^a$", "ab"));
  EXPECT_TRUE(matches("^a$", std::string_view("ab", 1)));
  EXPECT_TRUE(matches("^$", ""));
}

TEST(PosixRegex, LongTextDoesNotExhaustTheStack) {
  std::string uri = "/static/" + std::string(1 << 20, 'a') + ".css";
  EXPECT_TRUE(matches("^/static/.*\\.css$", uri));
  EXPECT_FALSE(matches("^/static/(a|b)*\\.js$", uri));
}

TEST(PosixRegex, RefusedPatternsSayWhy) {
  Result<PosixRegex> re = PosixRegex::compile("(unclosed");
  ASSERT_FALSE(re.ok());
  EXPECT_EQ(re.status().message().rfind("invalid regular expression: ", 0), 0u)
      << re.status().message();
  re = PosixRegex::compile("/v\\d+/");
  ASSERT_FALSE(re.ok());
  EXPECT_EQ(re.status().message(), "\\d is PCRE, not POSIX: write [0-9]");
  EXPECT_EQ(PosixRegex::compile("\\D").status().message(), "\\D is PCRE, not POSIX: write [^0-9]");
  EXPECT_FALSE(PosixRegex::compile(std::string_view("a\0b", 3)).ok());
}

}  // namespace
}  // namespace aiowsgi
