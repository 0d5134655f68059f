#include "master/file_watcher.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "common/status.h"
#include "common/watch_report.h"

namespace aiowsgi::master {

namespace {

// IN_CLOSE_WRITE: a write finished; IN_MOVED_TO / IN_CREATE: a save that writes a temporary
// file and renames it over the original; IN_MOVED_FROM / IN_DELETE: the file went away (an
// editor that renames the original to a backup first); IN_ATTRIB: `touch`. The *_SELF
// events: the directory itself went away.
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                           IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

template <typename F>
void guarded(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("file watcher {}: {}", what, e.what());
  } catch (...) {
    spdlog::error("file watcher {}: unknown exception", what);
  }
}

}  // namespace

FileWatcher::FileWatcher(struct ev_loop* loop, OnChange on_change)
    : loop_(loop), on_change_(std::move(on_change)) {
  ev_init(&io_, &FileWatcher::io_cb);
  io_.data = this;
  ev_init(&timer_, &FileWatcher::timer_cb);
  timer_.data = this;
}

FileWatcher::~FileWatcher() { stop(); }

void FileWatcher::configure(const config::Config& cfg) {
  if (!cfg.app.reload) {
    if (active()) {
      spdlog::info("auto-reload off: no longer watching files");
      stop();
    }
    return;
  }
  if (active() && cfg.app.reload_extra == extra_) return;
  // Started, or reload_extra changed: start over. The workers of the generation being started
  // report their modules again, so nothing they loaded is missed.
  bool restart = active();
  stop();
  start();
  if (!active()) return;
  extra_ = cfg.app.reload_extra;
  for (const std::string& e : extra_) add_extra(e);
  spdlog::info("auto-reload {}: watching the files of imported modules{}",
               restart ? "restarted" : "on", extra_.empty() ? "" : " and reload_extra");
}

void FileWatcher::start() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    spdlog::error("auto-reload off: inotify_init1: {} (see fs.inotify.max_user_instances)",
                  errno_string(errno));
    return;
  }
  fd_.reset(fd);
  ev_io_set(&io_, fd, EV_READ);
  ev_io_start(loop_, &io_);
}

void FileWatcher::stop() {
  ev_io_stop(loop_, &io_);
  ev_timer_stop(loop_, &timer_);
  fd_.reset();  // drops every watch
  set_.clear();
  debounce_.reset();
  wd_dirs_.clear();
  dir_wd_.clear();
  extra_.clear();
  warned_full_ = warned_limit_ = false;
}

void FileWatcher::add_report(std::string_view payload, const std::string& who) {
  if (!active()) return;  // a report from a generation started before reload was turned off
  size_t rejected = 0;
  std::vector<std::string> paths = parse_watch_payload(payload, &rejected);
  if (rejected > 0) {
    spdlog::warn("auto-reload: {} sent {} unusable path{}; ignored", who, rejected,
                 rejected == 1 ? "" : "s");
  }
  size_t before = set_.file_count();
  for (const std::string& p : paths) add_path(p);
  // Only when something is new: the workers of every generation report the same files again.
  if (set_.file_count() > before) {
    spdlog::info("auto-reload: watching {} files in {} directories ({} new from {})",
                 set_.file_count(), dir_wd_.size(), set_.file_count() - before, who);
  }
}

void FileWatcher::add_path(const std::string& path) {
  track(set_.add_file(path), WatchSet::dir_of(path), path);
  // A symlinked file is edited where it points to: watch that too.
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) != nullptr && path != real) {
    std::string r(real);
    track(set_.add_file(r), WatchSet::dir_of(r), r);
  }
}

// reload_extra: a file, a directory (its files: "DIR/*"), or a glob. Wildcards in the last
// component are matched on every event, so files created later count; wildcards in the
// directory part are expanded now (and at every reload).
void FileWatcher::add_extra(const std::string& entry) {
  if (!has_glob_chars(entry)) {
    struct stat st {};
    if (::stat(entry.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      track(set_.add_pattern(entry, "*"), entry, entry);
    } else {
      add_path(entry);
    }
    return;
  }
  std::string dir = WatchSet::dir_of(entry);
  std::string pattern = WatchSet::name_of(entry);
  if (dir.empty() || pattern.empty()) {
    spdlog::warn("auto-reload: reload_extra {}: not a usable pattern", entry);
    return;
  }
  if (!has_glob_chars(dir)) {
    track(set_.add_pattern(dir, pattern), dir, entry);
    return;
  }
  glob_t g{};
  int rc = ::glob(dir.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &g);
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::string d = g.gl_pathv[i];
      while (d.size() > 1 && d.back() == '/') d.pop_back();
      track(set_.add_pattern(d, pattern), d, entry);
    }
  } else {
    spdlog::warn("auto-reload: reload_extra {}: no directory matches {}", entry, dir);
  }
  ::globfree(&g);
}

void FileWatcher::track(WatchSet::Added added, const std::string& dir, const std::string& what) {
  switch (added) {
    case WatchSet::Added::kInvalid:
      spdlog::warn("auto-reload: cannot watch {}", what);
      return;
    case WatchSet::Added::kFull:
      if (!warned_full_) {
        warned_full_ = true;
        spdlog::warn("auto-reload: watching {} files in {} directories already; not adding {}",
                     set_.file_count(), set_.dir_count(), what);
      }
      return;
    case WatchSet::Added::kKnown:
    case WatchSet::Added::kNewName:
    case WatchSet::Added::kNewDir:
      // Also for a known name: its directory's watch may have gone (directory removed and
      // created again); the next report restores it.
      if (dir_wd_.count(dir) == 0) watch_dir(dir);
      return;
  }
}

void FileWatcher::watch_dir(const std::string& dir) {
  int wd = ::inotify_add_watch(fd_.get(), dir.c_str(), kMask);
  if (wd < 0) {
    int err = errno;
    if (err == ENOSPC) {
      if (!warned_limit_) {
        warned_limit_ = true;
        spdlog::warn(
            "auto-reload: inotify watch limit reached at {} (raise "
            "fs.inotify.max_user_watches); some files are not watched",
            dir);
      }
    } else {
      spdlog::debug("auto-reload: cannot watch {}: {}", dir, errno_string(err));
    }
    return;
  }
  dir_wd_[dir] = wd;
  std::vector<std::string>& dirs = wd_dirs_[wd];
  if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
}

void FileWatcher::io_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* self = static_cast<FileWatcher*>(w->data);
  guarded("read", [&] { self->on_readable(); });
}

void FileWatcher::timer_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<FileWatcher*>(w->data);
  guarded("timer", [&] { self->on_timer(); });
}

void FileWatcher::on_readable() {
  alignas(inotify_event) char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        changed("(inotify queue overflow: events were lost)");
        continue;
      }
      auto it = wd_dirs_.find(ev->wd);
      if (it == wd_dirs_.end()) continue;
      if (ev->mask & IN_IGNORED) {
        // The watch is gone (its directory was removed): forget it, a later report re-adds it.
        for (const std::string& d : it->second) dir_wd_.erase(d);
        wd_dirs_.erase(it);
        continue;
      }
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        changed(it->second.front());
        continue;
      }
      if (ev->len == 0) continue;
      std::string name(ev->name, strnlen(ev->name, ev->len));
      for (const std::string& d : it->second) {
        if (set_.matches(d, name)) {
          changed(d == "/" ? "/" + name : d + "/" + name);
          break;
        }
      }
    }
  }
  arm_timer();
}

void FileWatcher::changed(const std::string& path) {
  spdlog::debug("auto-reload: {} changed", path);
  debounce_.change(ev_now(loop_), path);
}

void FileWatcher::arm_timer() {
  std::optional<double> due = debounce_.deadline();
  ev_timer_stop(loop_, &timer_);
  if (!due) return;
  ev_timer_set(&timer_, std::max(0.0, *due - ev_now(loop_)), 0.);
  ev_timer_start(loop_, &timer_);
}

void FileWatcher::on_timer() {
  std::optional<ReloadDebouncer::Burst> burst = debounce_.take_due(ev_now(loop_) + 1e-3);
  if (!burst) {
    arm_timer();  // woke a little early
    return;
  }
  on_change_(burst->first_path, burst->changes);
}

}  // namespace aiowsgi::master
