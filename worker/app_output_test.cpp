#include "worker/app_output.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::worker::app_output {
namespace {

std::string line_of(bool json, Stream stream, std::string_view text) {
  log_line::LinePrefix prefix(json, 4321, "worker 2",
                              stream == Stream::kStdout ? "stdout" : "stderr");
  timespec now{1700000000, 5 * 1000000};
  log_line::Buf b;
  format_line(&prefix, json, 2, stream, text, now, &b);
  return std::string(b.data(), b.size());
}

// The text format: the server log's prefix, the stream where the level would be, then the
// app's text exactly as written (an app's own "ERROR:" or colour codes stay its own).
TEST(AppOutput, TextLineMarksTheStreamAndKeepsTheText) {
  std::string line = line_of(false, Stream::kStderr, "INFO:myapp:caf\xc3\xa9 \"q\" \\ \t");
  EXPECT_NE(line.find("] [4321] [worker 2] [stderr] INFO:myapp:caf\xc3\xa9 \"q\" \\ \t\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.front(), '[');
  EXPECT_EQ(line.find("[error]"), std::string::npos);
}

TEST(AppOutput, JsonLineHasTheStreamAndTheText) {
  std::string line = line_of(true, Stream::kStdout, "caf\xc3\xa9 \"q\" \\ \t");
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  EXPECT_NE(
      line.find("\",\"pid\":4321,\"worker\":2,\"stream\":\"stdout\",\"message\":\"caf\xc3\xa9 "
                "\\\"q\\\" \\\\ \\u0009\"}\n"),
      std::string::npos)
      << line;
}

// JSON must stay valid whatever bytes the app (or a C library) wrote to fd 1 or 2.
TEST(AppOutput, JsonTextReplacesBytesThatAreNotUtf8) {
  log_line::Buf b;
  log_line::append_json_text(&b,
                             "a\xff"
                             "b\xc3"
                             "c\xed\xa0\x80"
                             "d\xf0\x9f\x98\x80"
                             "e\x1b[0m");
  EXPECT_EQ(std::string(b.data(), b.size()),
            "a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\xf0\x9f\x98\x80"
            "e\\u001b[0m");
}

TEST(AppOutput, JsonTextAtTheEndOfACutSequence) {
  log_line::Buf b;
  log_line::append_json_text(&b, "x\xe2\x82");  // the first two bytes of a 3-byte sequence
  EXPECT_EQ(std::string(b.data(), b.size()), "x\\ufffd\\ufffd");
}

}  // namespace
}  // namespace aiowsgi::worker::app_output
