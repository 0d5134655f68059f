#include "master/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"

namespace aiowsgi::master {

Status write_pidfile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Status::Io("cannot write pidfile " + path, errno);
  std::string text = std::to_string(::getpid()) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    int err = errno;
    ::unlink(path.c_str());
    return Status::Io("cannot write pidfile " + path, err);
  }
  return Status::Ok();
}

void remove_pidfile(const std::string& path) {
  if (path.empty()) return;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return;
  char buf[32] = {};
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return;
  if (std::string(buf, static_cast<size_t>(n)) != std::to_string(::getpid()) + "\n") return;
  ::unlink(path.c_str());
}

}  // namespace aiowsgi::master
