#include "worker/body_buffer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace aiowsgi::worker {
namespace {

namespace fs = std::filesystem;

class BodyBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aiowsgi-body-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t entries() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {}));
  }
  static std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  }
  std::string read_all(const BodyBuffer& b, size_t step) {
    std::string all, part;
    for (uint64_t off = 0;; off += part.size()) {
      ssize_t n = b.read_at(off, step, &part);
      EXPECT_GE(n, 0);
      if (n <= 0) break;
      all += part;
    }
    return all;
  }
  fs::path dir_;
};

TEST_F(BodyBufferTest, SmallBodyStaysInMemory) {
  BodyBuffer b(16, dir_);
  ASSERT_TRUE(b.append("hello ", 6).ok());
  ASSERT_TRUE(b.append("world", 5).ok());
  EXPECT_FALSE(b.on_disk());
  EXPECT_EQ(b.size(), 11u);
  EXPECT_EQ(read_all(b, 4), "hello world");
}

TEST_F(BodyBufferTest, SpillsToAnUnlinkedFileOncePastTheLimit) {
  BodyBuffer b(10, dir_);
  ASSERT_TRUE(b.append("0123456789", 10).ok());
  EXPECT_FALSE(b.on_disk());  // exactly the limit still fits
  ASSERT_TRUE(b.append("X", 1).ok());
  EXPECT_TRUE(b.on_disk());
  ASSERT_TRUE(b.append("yz", 2).ok());
  EXPECT_EQ(b.size(), 13u);
  EXPECT_EQ(read_all(b, 3), "0123456789Xyz");
  EXPECT_EQ(entries(), 0u) << "the temporary file must have no name";
}

TEST_F(BodyBufferTest, ExpectedLargeBodyGoesToTheFileFromTheStart) {
  BodyBuffer b(4, dir_);
  b.expect(100);
  ASSERT_TRUE(b.append("ab", 2).ok());
  EXPECT_TRUE(b.on_disk());
  BodyBuffer small(100, dir_);
  small.expect(50);
  ASSERT_TRUE(small.append("ab", 2).ok());
  EXPECT_FALSE(small.on_disk());
}

TEST_F(BodyBufferTest, AClaimedLengthReservesLittle) {
  // A client's Content-Length under a huge limit must not allocate before bytes arrive.
  BodyBuffer b(SIZE_MAX / 2, dir_);
  b.expect(uint64_t{1} << 60);
  ASSERT_TRUE(b.append("ab", 2).ok());
  EXPECT_FALSE(b.on_disk());
  EXPECT_EQ(b.size(), 2u);
}

TEST_F(BodyBufferTest, ReadsAtAnyOffsetAgain) {
  const std::string body = pattern(300000);
  BodyBuffer b(1000, dir_);
  for (size_t off = 0; off < body.size(); off += 7000)
    ASSERT_TRUE(b.append(body.data() + off, std::min<size_t>(7000, body.size() - off)).ok());
  ASSERT_TRUE(b.on_disk());
  std::string part;
  EXPECT_EQ(b.read_at(123456, 10, &part), 10);
  EXPECT_EQ(part, body.substr(123456, 10));
  EXPECT_EQ(b.read_at(body.size() - 3, 10, &part), 3);  // short at the end
  EXPECT_EQ(part, body.substr(body.size() - 3));
  EXPECT_EQ(b.read_at(body.size(), 10, &part), 0);
  EXPECT_EQ(b.read_at(body.size() + 50, 10, &part), 0);
  EXPECT_TRUE(part.empty());
  EXPECT_EQ(read_all(b, 65536), body);  // from the start once more (seek(0))
  EXPECT_EQ(read_all(b, 65536), body);
}

TEST_F(BodyBufferTest, MemoryBodyReadsAtOffsets) {
  BodyBuffer b(1 << 20, dir_);
  ASSERT_TRUE(b.append("abcdef", 6).ok());
  std::string part;
  EXPECT_EQ(b.read_at(2, 3, &part), 3);
  EXPECT_EQ(part, "cde");
  EXPECT_EQ(b.read_at(0, 100, &part), 6);
  EXPECT_EQ(part, "abcdef");
}

TEST_F(BodyBufferTest, MissingFolderFailsOnlyWhenTheFileIsNeeded) {
  BodyBuffer b(4, (dir_ / "gone").string());
  ASSERT_TRUE(b.append("abcd", 4).ok());  // memory: no file yet
  Status s = b.append("e", 1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIo);
  EXPECT_NE(s.message().find("gone"), std::string::npos) << s.message();
}

TEST_F(BodyBufferTest, OpenUnlinkedTempLeavesNoName) {
  UniqueFd fd = open_unlinked_temp(dir_.string());
  ASSERT_TRUE(fd);
  EXPECT_EQ(::write(fd.get(), "x", 1), 1);
  EXPECT_EQ(entries(), 0u);
  EXPECT_FALSE(open_unlinked_temp((dir_ / "nope").string()));
}

TEST_F(BodyBufferTest, WriteFailureIsReported) {
  // A file-size limit makes the writes fail (EFBIG) as a full disk would (ENOSPC).
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  void (*was)(int) = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string body = pattern(10000);
  BodyBuffer b(100, dir_);
  Status s = b.append(body.data(), body.size());
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, was);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIo);
  EXPECT_NE(s.message().find("writing a request body"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace aiowsgi::worker
