// Logging: line format, level, file sink and reopen after the file was moved away.
#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace aiowsgi {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/aiowsgi-log-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    log::setup_stderr("test");  // later tests must not write into a deleted folder
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(LogTest, FileLinesCarryPidNameAndLevel) {
  std::string file = dir_ + "/server.log";
  ASSERT_TRUE(log::setup("info", file, "master").ok());
  EXPECT_TRUE(log::logging_to_file());
  spdlog::info("hello {}", 1);
  spdlog::debug("not shown at info");
  log::set_process_name("worker 3");
  spdlog::warn("from the worker");
  log::flush();

  std::string text = read_file(file);
  std::string pid = "[" + std::to_string(getpid()) + "]";
  EXPECT_NE(text.find(pid + " [master] [info] hello 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find(pid + " [worker 3] [warning] from the worker\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("not shown"), std::string::npos) << text;

  ASSERT_TRUE(log::set_level("debug").ok());
  spdlog::debug("now shown");
  EXPECT_NE(read_file(file).find("now shown"), std::string::npos);
  EXPECT_FALSE(log::set_level("loud").ok());
}

TEST_F(LogTest, ReopenFollowsTheNameAfterRotation) {
  std::string file = dir_ + "/server.log";
  ASSERT_TRUE(log::setup("info", file, "master").ok());
  spdlog::info("before rotation");
  ASSERT_EQ(rename(file.c_str(), (file + ".1").c_str()), 0);
  spdlog::info("still the old file");
  ASSERT_TRUE(log::reopen().ok());
  spdlog::info("after reopen");

  std::string old_text = read_file(file + ".1");
  std::string new_text = read_file(file);
  EXPECT_NE(old_text.find("before rotation"), std::string::npos);
  EXPECT_NE(old_text.find("still the old file"), std::string::npos);
  EXPECT_EQ(old_text.find("after reopen"), std::string::npos);
  EXPECT_NE(new_text.find("after reopen"), std::string::npos) << new_text;
}

TEST_F(LogTest, Errors) {
  Status s = log::setup("chatty", "", "master");
  EXPECT_EQ(s.code(), Status::Code::kConfig);
  s = log::setup("info", dir_ + "/missing/dir/server.log", "master");
  ASSERT_EQ(s.code(), Status::Code::kIo);
  EXPECT_NE(s.message().find("missing/dir/server.log"), std::string::npos) << s.message();
  // Stderr logging: reopen is a no-op that succeeds.
  log::setup_stderr("master");
  EXPECT_FALSE(log::logging_to_file());
  EXPECT_TRUE(log::reopen().ok());
}

TEST_F(LogTest, ASymbolicLinkAtTheLogPathIsRefused) {
  std::string target = dir_ + "/precious";
  {
    std::ofstream out(target);
    out << "keep\n";
  }
  std::string file = dir_ + "/server.log";
  ASSERT_EQ(symlink(target.c_str(), file.c_str()), 0);
  Status s = log::setup("info", file, "test");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is a symbolic link; refusing to follow it"), std::string::npos)
      << s.message();
  EXPECT_EQ(read_file(target), "keep\n");
  // Nor on reopen (SIGUSR1), after the real file was swapped for a link.
  std::string real = dir_ + "/real.log";
  ASSERT_TRUE(log::setup("info", real, "test").ok());
  ASSERT_EQ(rename(real.c_str(), (dir_ + "/rotated.log").c_str()), 0);
  ASSERT_EQ(symlink(target.c_str(), real.c_str()), 0);
  EXPECT_FALSE(log::reopen().ok());
  spdlog::info("still logged to the old file");
  EXPECT_EQ(read_file(target), "keep\n");
  EXPECT_NE(read_file(dir_ + "/rotated.log").find("still logged"), std::string::npos);
}

// Containers log to /dev/stdout or /dev/stderr: symbolic links into /proc that name the
// process's own streams, taken directly rather than refused as links.
TEST_F(LogTest, DevStderrIsTheProcessStandardError) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  Status s = log::setup("info", "/dev/stderr", "test");
  spdlog::info("to the standard stream");
  spdlog::default_logger()->flush();
  ASSERT_TRUE(log::setup("info", "", "test").ok());  // drop the sink's duplicate
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  ASSERT_TRUE(s.ok()) << s.message();
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(p[0]);
  EXPECT_NE(got.find("to the standard stream"), std::string::npos) << got;
}

TEST_F(LogTest, ChownFileWorksOnTheOpenFile) {
  std::string file = dir_ + "/server.log";
  ASSERT_TRUE(log::setup("info", file, "test").ok());
  // Our own ids: allowed without root, and proves the descriptor path is taken.
  EXPECT_TRUE(log::chown_file(getuid(), getgid()).ok());
  log::setup_stderr("test");
  EXPECT_TRUE(log::chown_file(getuid(), getgid()).ok());  // stderr: nothing to do
}

}  // namespace
}  // namespace aiowsgi
