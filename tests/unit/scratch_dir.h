// ScratchDir: a fresh folder under /tmp for one unit test, removed with everything in it when
// the test ends. Test code only (tests/unit/ helpers are never included by the product).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace aiowsgi::testing {

class ScratchDir {
 public:
  // |prefix| names the test in the folder's name, e.g. "aiowsgi-systemd".
  explicit ScratchDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ScratchDir(ScratchDir&&) = delete;
  ScratchDir& operator=(ScratchDir&&) = delete;
  // Empty if the folder could not be made.
  const std::string& path() const { return path_; }
  // Writes |content| to the file |name| inside the folder, making the folders it names;
  // returns its full path.
  std::string write(const std::string& name, const std::string& content) const {
    std::filesystem::path p = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

 private:
  std::string path_;
};

}  // namespace aiowsgi::testing
