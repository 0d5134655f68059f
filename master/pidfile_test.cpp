// Pidfile: lock held for the master's life, stale files taken over, links refused.
#include "master/pidfile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace aiowsgi::master {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

class PidfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/aiowsgi-pidfile-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/master.pid";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_, path_;
};

TEST_F(PidfileTest, WritesOurPidAndRemovesTheFileOnRelease) {
  Pidfile p;
  pid_t holder = 123;
  ASSERT_TRUE(p.acquire(path_, &holder).ok());
  EXPECT_EQ(holder, 0);
  EXPECT_EQ(read_all(path_), std::to_string(getpid()) + "\n");
  EXPECT_GE(p.fd(), 0);
  p.release();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(p.fd(), -1);
}

TEST_F(PidfileTest, AStaleFileIsTakenOver) {
  write_all(path_, "999999999\nleftover text longer than a pid\n");
  Pidfile p;
  pid_t holder = 0;
  Status s = p.acquire(path_, &holder);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(read_all(path_), std::to_string(getpid()) + "\n");  // truncated, not appended
}

TEST_F(PidfileTest, AFileLockedByAnotherProcessIsRefusedAndLeftIntact) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Pidfile other;
    pid_t h = 0;
    char c = other.acquire(path_, &h).ok() ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    pause();  // killed by the parent
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(c, 'y');
  std::string before = read_all(path_);
  EXPECT_EQ(before, std::to_string(child) + "\n");

  Pidfile p;
  pid_t holder = 0;
  Status s = p.acquire(path_, &holder);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(holder, child);
  EXPECT_NE(s.message().find("locked by another running master (pid " + std::to_string(child)),
            std::string::npos)
      << s.message();
  EXPECT_EQ(read_all(path_), before);  // not truncated, not rewritten
  EXPECT_EQ(p.fd(), -1);

  // Once the holder is gone (killed: it could not remove the file), the file is stale.
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(std::filesystem::exists(path_));
  s = p.acquire(path_, &holder);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(holder, 0);
  EXPECT_EQ(read_all(path_), std::to_string(getpid()) + "\n");
}

TEST_F(PidfileTest, ASymbolicLinkIsRefusedAndItsTargetUntouched) {
  std::string target = dir_ + "/precious";
  write_all(target, "do not truncate\n");
  ASSERT_EQ(symlink(target.c_str(), path_.c_str()), 0);
  Pidfile p;
  pid_t holder = 0;
  Status s = p.acquire(path_, &holder);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is a symbolic link; refusing to follow it"), std::string::npos)
      << s.message();
  EXPECT_EQ(read_all(target), "do not truncate\n");
  // A dangling link must not create its target either.
  std::string missing = dir_ + "/created-through-link";
  ASSERT_EQ(unlink(path_.c_str()), 0);
  ASSERT_EQ(symlink(missing.c_str(), path_.c_str()), 0);
  EXPECT_FALSE(p.acquire(path_, &holder).ok());
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(PidfileTest, AHardLinkedFileIsRefused) {
  std::string target = dir_ + "/precious";
  write_all(target, "do not truncate\n");
  ASSERT_EQ(link(target.c_str(), path_.c_str()), 0);
  Pidfile p;
  pid_t holder = 0;
  Status s = p.acquire(path_, &holder);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("hard links"), std::string::npos) << s.message();
  EXPECT_EQ(read_all(target), "do not truncate\n");
}

TEST_F(PidfileTest, ADirectoryIsRefused) {
  ASSERT_EQ(mkdir(path_.c_str(), 0755), 0);
  Pidfile p;
  pid_t holder = 0;
  Status s = p.acquire(path_, &holder);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(s.message().empty());
}

TEST_F(PidfileTest, ReleaseLeavesAFileThatReplacedOurs) {
  Pidfile p;
  pid_t holder = 0;
  ASSERT_TRUE(p.acquire(path_, &holder).ok());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  write_all(path_, "4242\n");  // another master's, say
  p.release();
  EXPECT_EQ(read_all(path_), "4242\n");
}

TEST_F(PidfileTest, HandOverLeavesTheFileForTheNextMasterToTake) {
  Pidfile old_master;
  pid_t holder = 0;
  ASSERT_TRUE(old_master.acquire(path_, &holder).ok());
  write_all(path_, "4242\n");  // stands for the old master's pid
  old_master.hand_over();
  EXPECT_EQ(old_master.fd(), -1);
  EXPECT_EQ(read_all(path_), "4242\n");  // still there: the path never goes missing
  old_master.release();                  // its exit path: a no-op now
  EXPECT_EQ(read_all(path_), "4242\n");
  Pidfile new_master;
  ASSERT_TRUE(new_master.acquire(path_, &holder).ok());
  EXPECT_EQ(read_all(path_), std::to_string(getpid()) + "\n");
}

}  // namespace
}  // namespace aiowsgi::master
