#include "worker/access_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
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

namespace aiowsgi::worker::access_log {
namespace {

// The layout of the server log's lines (and of the access log before it had its own
// formatter): local time to the millisecond, pid, worker.
TEST(AccessLog, TextRecordStartsLikeTheServerLog) {
  timespec now{1700000000, 42 * 1000000 + 999};
  tm t{};
  time_t sec = now.tv_sec;
  localtime_r(&sec, &t);
  char date[64];
  strftime(date, sizeof date, "[%Y-%m-%d %H:%M:%S.042] [4321] [worker 2] [access] ", &t);
  std::string line, body;
  format_record(sample(), false, 4321, now, &line);
  format_line(sample(), false, &body);
  EXPECT_EQ(line, std::string(date) + body + "\n");
}

TEST(AccessLog, JsonRecordIsOneObject) {
  timespec now{1700000000, 7 * 1000000};
  tm t{};
  time_t sec = now.tv_sec;
  localtime_r(&sec, &t);
  char date[64];
  strftime(date, sizeof date, "{\"time\":\"%Y-%m-%dT%H:%M:%S.007", &t);
  long off = t.tm_gmtoff / 60;
  char zone[64];
  snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+', std::abs(off) / 60,
           std::abs(off) % 60);
  std::string line, body;
  format_record(sample(), true, 99, now, &line);
  format_line(sample(), true, &body);
  EXPECT_EQ(line, std::string(date) + zone + "\",\"pid\":99," + body + "}\n");
}

TEST(AccessLog, SmallFiguresArePaddedAndLargeOnesWhole) {
  Entry e = sample();
  e.duration_us = 5;  // 0.005 ms
  e.bytes = 18446744073709551615u;
  std::string line;
  format_line(e, false, &line);
  EXPECT_NE(line.find(" 404 18446744073709551615 0.005ms "), std::string::npos) << line;
  e.core = -1;  // a request answered without a core (a static file)
  format_line(e, false, &line);
  EXPECT_NE(line.find(" core=-1"), std::string::npos) << line;
  format_line(e, true, &line);
  EXPECT_NE(line.find("\"core\":-1"), std::string::npos) << line;
  std::string long_target(5000, 'a');
  e.target = long_target;  // past the stack buffer
  format_line(e, false, &line);
  EXPECT_NE(line.find(long_target + "\" 404"), std::string::npos);
}

}  // namespace
}  // namespace aiowsgi::worker::access_log
