#include "worker/access_log.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::worker::access_log {
namespace {

Entry sample() {
  Entry e;
  e.remote = "10.0.0.1";
  e.method = "GET";
  e.target = "/a\"b?x=\xe9";
  e.status = 404;
  e.bytes = 123;
  e.duration_us = 4567;
  e.worker = 2;
  e.core = 7;
  return e;
}

TEST(AccessLog, TextLine) {
  std::string line;
  format_line(sample(), false, &line);
  EXPECT_EQ(line, "10.0.0.1 \"GET /a\\\"b?x=\\xe9\" 404 123 4.567ms worker=2 core=7");
}

TEST(AccessLog, JsonFields) {
  std::string line;
  format_line(sample(), true, &line);
  EXPECT_EQ(line,
            "\"remote\":\"10.0.0.1\",\"method\":\"GET\",\"path\":\"/a\\\"b?x=\\u00e9\","
            "\"status\":404,\"bytes\":123,\"duration_us\":4567,\"worker\":2,\"core\":7");
}

TEST(AccessLog, ControlCharactersCannotSplitTheLine) {
  Entry e = sample();
  e.target = "/x\r\nfake line";
  std::string text, json;
  format_line(e, false, &text);
  format_line(e, true, &json);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_NE(text.find("/x\\x0d\\x0afake line"), std::string::npos);
  EXPECT_NE(json.find("/x\\u000d\\u000afake line"), std::string::npos);
}

}  // namespace
}  // namespace aiowsgi::worker::access_log
