// WatchSet and ReloadDebouncer: which directories get watched, which events count, limits on
// what workers can add, and one reload per burst of changes.
#include "master/watch_set.h"

#include <gtest/gtest.h>

namespace aiowsgi::master {
namespace {

TEST(WatchSet, FilesShareTheirDirectoryWatch) {
  WatchSet s;
  EXPECT_EQ(s.add_file("/srv/app/app.py"), WatchSet::Added::kNewDir);
  EXPECT_EQ(s.add_file("/srv/app/helper.py"), WatchSet::Added::kNewName);
  EXPECT_EQ(s.add_file("/srv/app/app.py"), WatchSet::Added::kKnown);
  EXPECT_EQ(s.add_file("/srv/lib/x.py"), WatchSet::Added::kNewDir);
  EXPECT_EQ(s.add_file("/top.py"), WatchSet::Added::kNewDir);
  EXPECT_EQ(s.dirs(), (std::vector<std::string>{"/", "/srv/app", "/srv/lib"}));
  EXPECT_EQ(s.file_count(), 4u);
  EXPECT_TRUE(s.matches("/srv/app", "app.py"));
  EXPECT_TRUE(s.matches("/srv/app", "helper.py"));
  EXPECT_TRUE(s.matches("/", "top.py"));
  // An editor's temporary and backup files in the same folder are not ours.
  EXPECT_FALSE(s.matches("/srv/app", ".app.py.swp"));
  EXPECT_FALSE(s.matches("/srv/app", "app.py~"));
  EXPECT_FALSE(s.matches("/srv/app", "4913"));
  EXPECT_FALSE(s.matches("/srv/other", "app.py"));
  s.clear();
  EXPECT_FALSE(s.matches("/srv/app", "app.py"));
  EXPECT_EQ(s.file_count(), 0u);
}

TEST(WatchSet, RejectsPathsThatNameNoFile) {
  WatchSet s;
  EXPECT_EQ(s.add_file(""), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.add_file("relative.py"), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.add_file("/dir/"), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.add_file("/dir/.."), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.add_pattern("rel", "*.html"), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.add_pattern("/d", "a/*.html"), WatchSet::Added::kInvalid);
  EXPECT_EQ(s.dir_count(), 0u);
  EXPECT_EQ(WatchSet::dir_of("/a/b/c.py"), "/a/b");
  EXPECT_EQ(WatchSet::name_of("/a/b/c.py"), "c.py");
}

TEST(WatchSet, PatternsMatchNamesCreatedLater) {
  WatchSet s;
  EXPECT_EQ(s.add_pattern("/srv/tpl", "*.html"), WatchSet::Added::kNewDir);
  EXPECT_EQ(s.add_pattern("/srv/tpl", "*.html"), WatchSet::Added::kKnown);
  EXPECT_TRUE(s.matches("/srv/tpl", "index.html"));
  EXPECT_TRUE(s.matches("/srv/tpl", "new-page.html"));
  EXPECT_FALSE(s.matches("/srv/tpl", "index.txt"));
  EXPECT_FALSE(s.matches("/srv/tpl", ".hidden.html"));  // FNM_PERIOD: dot files need a dot
  EXPECT_EQ(s.add_pattern("/srv/conf", "*"), WatchSet::Added::kNewDir);
  EXPECT_TRUE(s.matches("/srv/conf", "settings.ini"));
  EXPECT_FALSE(s.matches("/srv/conf", ".settings.ini.swp"));
}

TEST(WatchSet, BoundsWhatWorkersCanAdd) {
  WatchSet s;
  for (size_t i = 0; i < WatchSet::kMaxDirs; ++i) {
    ASSERT_EQ(s.add_file("/d" + std::to_string(i) + "/m.py"), WatchSet::Added::kNewDir);
  }
  EXPECT_EQ(s.add_file("/one-more/m.py"), WatchSet::Added::kFull);
  EXPECT_EQ(s.dir_count(), WatchSet::kMaxDirs);
  // More names in known directories still fit, up to the file limit.
  EXPECT_EQ(s.add_file("/d0/n.py"), WatchSet::Added::kNewName);
  for (size_t i = s.file_count(); i < WatchSet::kMaxFiles; ++i) {
    ASSERT_EQ(s.add_file("/d1/f" + std::to_string(i) + ".py"), WatchSet::Added::kNewName);
  }
  EXPECT_EQ(s.add_file("/d1/last.py"), WatchSet::Added::kFull);
  EXPECT_EQ(s.add_file("/d1/m.py"), WatchSet::Added::kKnown);
  EXPECT_EQ(s.file_count(), WatchSet::kMaxFiles);
}

TEST(ReloadDebouncer, OneReloadPerBurst) {
  ReloadDebouncer d(0.1, 1.0);
  EXPECT_FALSE(d.deadline());
  EXPECT_FALSE(d.take_due(100));
  // An editor's save: write a temporary file, rename it over the original, fix the mode.
  d.change(10.00, "/srv/app.py");
  d.change(10.01, "/srv/app.py");
  d.change(10.03, "/srv/app.py");
  ASSERT_TRUE(d.deadline());
  EXPECT_DOUBLE_EQ(*d.deadline(), 10.13);
  EXPECT_FALSE(d.take_due(10.12));
  auto burst = d.take_due(10.13);
  ASSERT_TRUE(burst);
  EXPECT_EQ(burst->first_path, "/srv/app.py");
  EXPECT_EQ(burst->changes, 3u);
  EXPECT_FALSE(d.deadline());
  EXPECT_FALSE(d.take_due(20));
  // The next change starts a new burst, named by its own first file.
  d.change(30, "/srv/helper.py");
  d.change(30.05, "/srv/app.py");
  burst = d.take_due(30.2);
  ASSERT_TRUE(burst);
  EXPECT_EQ(burst->first_path, "/srv/helper.py");
  EXPECT_EQ(burst->changes, 2u);
}

TEST(ReloadDebouncer, ContinuousWritesStillReloadAfterMaxWait) {
  ReloadDebouncer d(0.1, 1.0);
  double t = 50;
  d.change(t, "/srv/gen.py");
  for (int i = 0; i < 30; ++i) {
    t += 0.05;  // never quiet for 0.1 s
    d.change(t, "/srv/gen.py");
  }
  ASSERT_TRUE(d.deadline());
  EXPECT_DOUBLE_EQ(*d.deadline(), 51.0);
  EXPECT_TRUE(d.take_due(51.0));
}

TEST(ReloadDebouncer, ResetDropsThePendingBurst) {
  ReloadDebouncer d;
  d.change(1, "/a.py");
  d.reset();
  EXPECT_FALSE(d.deadline());
  EXPECT_FALSE(d.take_due(100));
}

}  // namespace
}  // namespace aiowsgi::master
