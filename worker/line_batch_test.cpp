#include "worker/line_batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aiowsgi::worker {
namespace {

struct Recorder {
  std::vector<std::string> writes;
  bool fail = false;
  LineBatch::Writer writer() {
    return [this](const char* p, size_t n) {
      if (fail) return false;
      writes.emplace_back(p, n);
      return true;
    };
  }
};

std::string line(char c, size_t len) { return std::string(len - 1, c) + "\n"; }

// Every write holds whole lines only, and all lines arrive once, in order.
void expect_whole_lines(const std::vector<std::string>& writes, const std::string& all) {
  std::string joined;
  for (const auto& w : writes) {
    ASSERT_FALSE(w.empty());
    EXPECT_EQ(w.back(), '\n') << "a write ends mid-line";
    joined += w;
  }
  EXPECT_EQ(joined, all);
}

TEST(LineBatch, NothingIsWrittenUntilFlush) {
  Recorder r;
  LineBatch b(1024, 0, r.writer());
  b.append("a\n");
  b.append("bb\n");
  EXPECT_TRUE(r.writes.empty());
  EXPECT_EQ(b.size(), 5u);
  b.flush();
  ASSERT_EQ(r.writes.size(), 1u);
  EXPECT_EQ(r.writes[0], "a\nbb\n");
  EXPECT_EQ(b.size(), 0u);
  b.flush();  // nothing buffered: no empty write
  EXPECT_EQ(r.writes.size(), 1u);
}

TEST(LineBatch, AFullBufferIsWrittenBeforeTheLineThatDoesNotFit) {
  Recorder r;
  LineBatch b(100, 0, r.writer());
  std::string all;
  for (int i = 0; i < 10; ++i) {
    std::string l = line(static_cast<char>('a' + i), 30);
    all += l;
    b.append(l);
  }
  // 3 lines (90 bytes) fit; the 4th forces a write of the first 3.
  ASSERT_EQ(r.writes.size(), 3u);
  for (const auto& w : r.writes) EXPECT_EQ(w.size(), 90u);
  b.flush();
  expect_whole_lines(r.writes, all);
}

TEST(LineBatch, ALineLongerThanTheBufferGoesOutWholeAfterTheOthers) {
  Recorder r;
  LineBatch b(64, 0, r.writer());
  b.append("short\n");
  std::string big = line('x', 200);
  b.append(big);
  ASSERT_EQ(r.writes.size(), 2u);
  EXPECT_EQ(r.writes[0], "short\n");
  EXPECT_EQ(r.writes[1], big);
  EXPECT_EQ(b.size(), 0u);
}

TEST(LineBatch, PipeSinksGetChunksOfWholeLinesWithinMaxWrite) {
  Recorder r;
  LineBatch b(64 * 1024, 4096, r.writer());
  std::string all;
  for (int i = 0; i < 400; ++i) {
    std::string l = line(static_cast<char>('a' + i % 26), 50 + i % 97);
    all += l;
    b.append(l);
  }
  b.flush();
  ASSERT_GT(r.writes.size(), 1u);
  for (const auto& w : r.writes) EXPECT_LE(w.size(), 4096u);
  expect_whole_lines(r.writes, all);
}

TEST(LineBatch, AChunkEndingExactlyAtMaxWriteKeepsItsLastLine) {
  Recorder r;
  LineBatch b(1024, 100, r.writer());
  b.append(line('a', 50));
  b.append(line('b', 50));
  b.append(line('c', 10));
  b.flush();
  ASSERT_EQ(r.writes.size(), 2u);
  EXPECT_EQ(r.writes[0].size(), 100u);
  EXPECT_EQ(r.writes[1], line('c', 10));
}

TEST(LineBatch, ALineLongerThanMaxWriteIsNotSplit) {
  Recorder r;
  LineBatch b(1024, 100, r.writer());
  std::string all = line('a', 20) + line('b', 300) + line('c', 20);
  b.append(line('a', 20));
  b.append(line('b', 300));
  b.append(line('c', 20));
  b.flush();
  ASSERT_EQ(r.writes.size(), 3u);
  EXPECT_EQ(r.writes[1], line('b', 300));
  expect_whole_lines(r.writes, all);
}

TEST(LineBatch, AFailingWriterDropsTheBatchAndLaterLinesStillGoOut) {
  Recorder r;
  LineBatch b(1024, 0, r.writer());
  b.append("lost\n");
  r.fail = true;
  b.flush();
  EXPECT_EQ(b.size(), 0u);  // memory does not grow while the log cannot be written
  r.fail = false;
  b.append("kept\n");
  b.flush();
  ASSERT_EQ(r.writes.size(), 1u);
  EXPECT_EQ(r.writes[0], "kept\n");
}

TEST(LineBatch, MaxWriteFollowsTheSink) {
  Recorder r;
  LineBatch b(1024, 0, r.writer());
  for (int i = 0; i < 10; ++i) b.append(line('a', 50));
  b.set_max_write(120);
  b.flush();
  ASSERT_EQ(r.writes.size(), 5u);  // two 50-byte lines per write
  b.set_max_write(0);              // a regular file again: one write
  for (int i = 0; i < 10; ++i) b.append(line('a', 50));
  b.flush();
  EXPECT_EQ(r.writes.size(), 6u);
}

}  // namespace
}  // namespace aiowsgi::worker
