// WatchSet and ReloadDebouncer: the pure bookkeeping behind [app] reload (no syscalls, so the
// unit tests drive them directly). WatchSet says which directories need an inotify watch and
// whether an event for a name in one of them matters; ReloadDebouncer turns a burst of
// changes into one reload. Master only; no Python.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace aiowsgi::master {

class WatchSet {
 public:
  // Bounds on what workers can make the master watch (a worker runs app code and may send
  // anything): past them more paths are refused and add_file returns kFull.
  static constexpr size_t kMaxFiles = 100000;
  static constexpr size_t kMaxDirs = 8192;

  enum class Added {
    kKnown,    // already watched: nothing to do
    kNewName,  // a new name in a directory that is already watched
    kNewDir,   // the directory needs a watch (dir_of(path) names it)
    kFull,     // refused: a limit above was reached
    kInvalid,  // not an absolute path naming a file in a directory
  };

  // A file to watch: changes to |path| (absolute) matter.
  Added add_file(const std::string& path);
  // A glob for the last path component, as fnmatch(3) with FNM_PERIOD: in directory |dir|,
  // changes to names matching |pattern| matter ("*.html", "*"). kNewDir or kKnown/kNewName.
  Added add_pattern(const std::string& dir, const std::string& pattern);

  // Whether an event for |name| in |dir| is one of ours.
  bool matches(const std::string& dir, const std::string& name) const;

  // The directory holding |path| ("/a/b.py" -> "/a", "/b.py" -> "/"); "" for a bad path.
  static std::string dir_of(const std::string& path);
  static std::string name_of(const std::string& path);

  // Directories that need a watch, sorted.
  std::vector<std::string> dirs() const;
  size_t file_count() const { return files_; }
  size_t dir_count() const { return dirs_.size(); }
  void clear();

 private:
  struct Dir {
    std::set<std::string> names;
    std::set<std::string> patterns;
  };
  Added add(const std::string& dir, const std::string& entry, bool pattern);

  std::map<std::string, Dir> dirs_;
  size_t files_ = 0;
};

// Reload once per burst: an editor's save can be several events (write a temporary file,
// rename it over the original, fix the mode). The reload is due |quiet| seconds after the
// last change of a burst, but never later than |max_wait| after its first, so a tool that
// writes without a pause still gets its reload.
class ReloadDebouncer {
 public:
  explicit ReloadDebouncer(double quiet = 0.1, double max_wait = 1.0)
      : quiet_(quiet), max_wait_(max_wait) {}

  // A change to |path| at time |now| (seconds, any monotonic clock).
  void change(double now, const std::string& path);
  // When the pending burst's reload is due; nullopt when nothing is pending.
  std::optional<double> deadline() const;

  struct Burst {
    std::string first_path;  // the change that started the burst: the one logged
    size_t changes = 0;      // events in the burst
  };
  // The burst, if its deadline has come by |now|; the debouncer is idle again afterwards.
  std::optional<Burst> take_due(double now);
  void reset() { pending_ = false; }

 private:
  double quiet_;
  double max_wait_;
  bool pending_ = false;
  double first_at_ = 0;
  double last_at_ = 0;
  Burst burst_;
};

}  // namespace aiowsgi::master
