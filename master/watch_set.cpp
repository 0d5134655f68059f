#include "master/watch_set.h"

#include <fnmatch.h>

#include <algorithm>

namespace aiowsgi::master {

std::string WatchSet::dir_of(const std::string& path) {
  if (path.empty() || path.front() != '/') return "";
  size_t slash = path.rfind('/');
  if (slash + 1 == path.size()) return "";  // "/a/": no file name
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string WatchSet::name_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

WatchSet::Added WatchSet::add_file(const std::string& path) {
  std::string dir = dir_of(path);
  std::string name = name_of(path);
  if (dir.empty() || name.empty() || name == "." || name == "..") return Added::kInvalid;
  return add(dir, name, false);
}

WatchSet::Added WatchSet::add_pattern(const std::string& dir, const std::string& pattern) {
  if (dir.empty() || dir.front() != '/' || pattern.empty() ||
      pattern.find('/') != std::string::npos)
    return Added::kInvalid;
  return add(dir, pattern, true);
}

WatchSet::Added WatchSet::add(const std::string& dir, const std::string& entry, bool pattern) {
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) {
    if (dirs_.size() >= kMaxDirs || files_ >= kMaxFiles) return Added::kFull;
    Dir& d = dirs_[dir];
    (pattern ? d.patterns : d.names).insert(entry);
    ++files_;
    return Added::kNewDir;
  }
  auto& set = pattern ? it->second.patterns : it->second.names;
  if (set.count(entry) != 0) return Added::kKnown;
  if (files_ >= kMaxFiles) return Added::kFull;
  set.insert(entry);
  ++files_;
  return Added::kNewName;
}

bool WatchSet::matches(const std::string& dir, const std::string& name) const {
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) return false;
  if (it->second.names.count(name) != 0) return true;
  return std::any_of(
      it->second.patterns.begin(), it->second.patterns.end(),
      [&](const std::string& p) { return ::fnmatch(p.c_str(), name.c_str(), FNM_PERIOD) == 0; });
}

std::vector<std::string> WatchSet::dirs() const {
  std::vector<std::string> out;
  out.reserve(dirs_.size());
  for (const auto& [d, _] : dirs_) out.push_back(d);
  return out;
}

void WatchSet::clear() {
  dirs_.clear();
  files_ = 0;
}

void ReloadDebouncer::change(double now, const std::string& path) {
  if (!pending_) {
    pending_ = true;
    first_at_ = now;
    burst_ = Burst{path, 0};
  }
  last_at_ = now;
  ++burst_.changes;
}

std::optional<double> ReloadDebouncer::deadline() const {
  if (!pending_) return std::nullopt;
  return std::min(last_at_ + quiet_, first_at_ + max_wait_);
}

std::optional<ReloadDebouncer::Burst> ReloadDebouncer::take_due(double now) {
  std::optional<double> due = deadline();
  if (!due || now < *due) return std::nullopt;
  pending_ = false;
  return std::move(burst_);
}

}  // namespace aiowsgi::master
