// ScratchDir: a fresh folder under /tmp for one unit test, removed with everything in it when
// the test ends. Test code only (tests/unit/ helpers are never included by the product).
#pragma once

#include <stdlib.h>

#include <filesystem>
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

 private:
  std::string path_;
};

}  // namespace aiowsgi::testing
