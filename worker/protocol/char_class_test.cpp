// The byte-class table against the plain predicates of RFC 9110 it stands for, byte by byte,
// and the whole-string checks built on it. Pure C++, no Python.
#include "worker/protocol/char_class.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace aiowsgi::worker::char_class {
namespace {

// The definitions written out the slow way (RFC 9110 5.6.2 tchar, 5.5 field-vchar).
bool slow_token(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}
bool slow_field_value(int c) { return c != '\0' && c != '\r' && c != '\n'; }
bool slow_field(int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
bool slow_request_line(int c) { return c > 0x20 && c != 0x7f; }
bool slow_hex(int c) { return std::isxdigit(c) != 0 && c < 0x80; }

TEST(CharClassTable, AgreesWithThePredicatesForEveryByte) {
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    SCOPED_TRACE(c);
    EXPECT_EQ(is(kToken, ch), slow_token(c));
    EXPECT_EQ(is(kFieldValue, ch), slow_field_value(c));
    EXPECT_EQ(is(kField, ch), slow_field(c));
    EXPECT_EQ(is(kRequestLine, ch), slow_request_line(c));
    EXPECT_EQ(is(kHex, ch), slow_hex(c));
  }
}

TEST(CharClassTable, AllInChecksEveryByteOfEveryLength) {
  // One bad byte at each position of strings long enough to cover any unrolling.
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char bad : {'\0', '\r', '\n'}) {
        std::string s(len, 'a');
        s[at] = bad;
        EXPECT_FALSE(all_in(kFieldValue, s)) << len << " " << at << " " << int(bad);
        EXPECT_FALSE(is_field_value(s)) << len << " " << at << " " << int(bad);
      }
      std::string t(len, 'x');
      t[at] = ' ';
      EXPECT_FALSE(is_token(t)) << len << " " << at;
    }
    EXPECT_TRUE(all_in(kFieldValue, std::string(len, '\x80')));
    EXPECT_TRUE(is_field_value(std::string(len, '\x80')));
    EXPECT_TRUE(is_token(std::string(len, 'x')));
  }
  EXPECT_TRUE(all_in(kFieldValue, ""));
  EXPECT_TRUE(is_field_value(""));
  EXPECT_FALSE(is_token(""));
}

TEST(CharClassTable, FieldValueWordCheckAgreesWithTheTableForEveryBytePair) {
  // Every pair of bytes, at every offset of a 16-byte string (borrows across bytes are where
  // a word-at-a-time check can go wrong), padded with a byte that is allowed.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (size_t at : {0, 3, 6, 7, 14}) {
        std::string s(16, static_cast<char>(0x7f));
        s[at] = static_cast<char>(a);
        s[at + 1] = static_cast<char>(b);
        ASSERT_EQ(is_field_value(s), slow_field_value(a) && slow_field_value(b)) << a << " " << b;
      }
    }
  }
}

TEST(CharClassTable, IequalsFoldsAsciiLettersOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("content-lengtH ", "content-length"));
  EXPECT_FALSE(iequals("\xc0", "\xe0"));  // Latin-1 letters are not folded
  EXPECT_FALSE(iequals("[", "{"));        // 0x5b and 0x7b differ only in the case bit
}

TEST(CharClassLists, TrimSpaceAndTabAlikeAroundEveryElement) {
  EXPECT_EQ(trim_ows(" \tclose\t "), "close");
  EXPECT_EQ(trim_ows("\t"), "");
  EXPECT_EQ(trim_ows("a \tb"), "a \tb");  // whitespace inside stays
  std::vector<std::string_view> got;
  ListElements list("a ,\tb\t,, c,");
  for (std::string_view e; list.next(&e);) got.push_back(e);
  EXPECT_EQ(got, (std::vector<std::string_view>{"a", "b", "", "c", ""}));
  got.clear();
  ListElements empty("");
  for (std::string_view e; empty.next(&e);) got.push_back(e);
  EXPECT_EQ(got, (std::vector<std::string_view>{""}));
}

TEST(CharClassLists, TokenFoundWhateverTheWhitespaceAndCase) {
  EXPECT_TRUE(list_has_token("close\t", "close"));
  EXPECT_TRUE(list_has_token("\tClose", "close"));
  EXPECT_TRUE(list_has_token("keep-alive,\tclose\t,foo", "close"));
  EXPECT_TRUE(list_has_token("Upgrade", "upgrade"));
  EXPECT_TRUE(list_has_token(" keep-alive ,\tUPGRADE ", "upgrade"));
  EXPECT_FALSE(list_has_token("upgrade-insecure", "upgrade"));
  EXPECT_FALSE(list_has_token("closed", "close"));
  EXPECT_FALSE(list_has_token("clo se", "close"));
  EXPECT_FALSE(list_has_token("close\v", "close"));  // only SP and HTAB are OWS
  EXPECT_FALSE(list_has_token("", "close"));
}

}  // namespace
}  // namespace aiowsgi::worker::char_class
