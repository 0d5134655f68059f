#include "worker/static_open.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace aiowsgi::worker::static_open {
namespace {

namespace fs = std::filesystem;

// root/site/{a.txt, sub/b.txt, in-link -> a.txt, out-link -> ../secret, abs-link -> /etc/passwd,
// dir-link -> sub}, root/secret.
class StaticOpenTest : public ::testing::TestWithParam<Method> {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aiowsgi-static-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "site" / "sub");
    std::ofstream(root_ / "site" / "a.txt") << "A";
    std::ofstream(root_ / "site" / "sub" / "b.txt") << "BB";
    std::ofstream(root_ / "secret") << "S";
    fs::create_symlink("a.txt", root_ / "site" / "in-link");
    fs::create_symlink("../secret", root_ / "site" / "out-link");
    fs::create_symlink("/etc/passwd", root_ / "site" / "abs-link");
    fs::create_symlink("sub", root_ / "site" / "dir-link");
    fs::create_symlink("..", root_ / "site" / "up-link");
    dir_.reset(::open((root_ / "site").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_);
    if (GetParam() == Method::kOpenat2) {
      UniqueFd f;
      struct stat st {};
      if (open_beneath(dir_.get(), "a.txt", Method::kOpenat2, &f, &st) == ENOSYS)
        GTEST_SKIP() << "this kernel has no openat2";
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  int open(const std::string& rel, struct stat* st = nullptr) {
    UniqueFd f;
    struct stat s {};
    int err = open_beneath(dir_.get(), rel, GetParam(), &f, st ? st : &s);
    EXPECT_EQ(err == 0, static_cast<bool>(f)) << rel;
    return err;
  }
  fs::path root_;
  UniqueFd dir_;
};

TEST_P(StaticOpenTest, OpensRegularFilesBelow) {
  struct stat st {};
  EXPECT_EQ(open("a.txt", &st), 0);
  EXPECT_EQ(st.st_size, 1);
  EXPECT_EQ(open("sub/b.txt", &st), 0);
  EXPECT_EQ(st.st_size, 2);
}

TEST_P(StaticOpenTest, RefusesWhatIsNotAFileBelow) {
  EXPECT_EQ(open("missing"), ENOENT);
  EXPECT_EQ(open("sub"), EISDIR);
  EXPECT_NE(open("a.txt/x"), 0);
  EXPECT_NE(open("../secret"), 0);
  EXPECT_NE(open("out-link"), 0);
  EXPECT_NE(open("abs-link"), 0);
  EXPECT_NE(open("up-link/secret"), 0);
  EXPECT_NE(open("/etc/passwd"), 0);
  EXPECT_NE(open(""), 0);
}

TEST_P(StaticOpenTest, LinksThatStayInside) {
  // openat2 follows a link that stays below the folder; the walk refuses every link.
  if (GetParam() == Method::kWalk) {
    EXPECT_EQ(open("in-link"), ELOOP);
    EXPECT_NE(open("dir-link/b.txt"), 0);
  } else {
    EXPECT_EQ(open("in-link"), 0);
    EXPECT_EQ(open("dir-link/b.txt"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, StaticOpenTest,
                         ::testing::Values(Method::kOpenat2, Method::kWalk), [](const auto& info) {
                           return info.param == Method::kWalk ? "Walk" : "Openat2";
                         });

}  // namespace
}  // namespace aiowsgi::worker::static_open
