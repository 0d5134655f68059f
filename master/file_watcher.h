// FileWatcher: [app] reload in the master. One inotify fd watches the directories holding the
// files the workers report (common/watch_report.h) and the [app] reload_extra paths and globs;
// a change to one of them, debounced (watch_set.h), calls the reload callback once per burst.
// Master only; no Python. Runs on the master's libev loop (an ev_io and an ev_timer).
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "config/config.h"
#include "master/watch_set.h"

namespace aiowsgi::master {

class FileWatcher {
 public:
  // |on_change|: a burst of changes is over; |path| is the first file that changed, |changes|
  // the number of events in the burst.
  using OnChange = std::function<void(const std::string& path, size_t changes)>;

  FileWatcher(struct ev_loop* loop, OnChange on_change);
  ~FileWatcher();
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // Applies [app] reload and reload_extra; does nothing when they are as last applied, so it
  // may run on every configuration change (or more often). Turning reload off closes the fd.
  void configure(const config::Config& cfg);
  bool active() const { return static_cast<bool>(fd_); }
  // The inotify fd (-1 when inactive): forked workers close it.
  int fd() const { return fd_.get(); }

  // A worker's kWatchFiles payload. Unchecked input: parse_watch_payload() filters it, and
  // WatchSet bounds how much is kept. |who| names the worker in the (single) warning.
  void add_report(std::string_view payload, const std::string& who);

  size_t watched_files() const { return set_.file_count(); }
  size_t watched_dirs() const { return dir_wd_.size(); }

 private:
  static void io_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void timer_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
  void on_readable();
  void on_timer();
  void arm_timer();

  void start();
  void stop();
  void add_path(const std::string& path);
  void add_extra(const std::string& entry);
  void track(WatchSet::Added added, const std::string& dir, const std::string& what);
  void watch_dir(const std::string& dir);
  void changed(const std::string& path);

  struct ev_loop* loop_;
  OnChange on_change_;
  UniqueFd fd_;
  ev_io io_{};
  ev_timer timer_{};
  WatchSet set_;
  ReloadDebouncer debounce_;
  std::map<int, std::vector<std::string>> wd_dirs_;  // one inode may be reached by two paths
  std::map<std::string, int> dir_wd_;
  std::vector<std::string> extra_;  // reload_extra as last applied
  bool warned_full_ = false;
  bool warned_limit_ = false;
};

}  // namespace aiowsgi::master
