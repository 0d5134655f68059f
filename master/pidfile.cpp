#include "master/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace aiowsgi::master {
namespace {

// A whole-file write lock. fcntl (not flock) locks belong to the process, so forked workers,
// which inherit the descriptor, never hold it; the lock dies with the master.
int lock_whole_file(int fd, short type, int cmd) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  return ::fcntl(fd, cmd, &fl);
}

pid_t lock_holder(int fd) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) return fl.l_pid;
  return -1;
}

bool same_file(const struct stat& a, dev_t dev, ino_t ino) {
  return a.st_dev == dev && a.st_ino == ino;
}

}  // namespace

Status Pidfile::acquire(const std::string& path, pid_t* holder) {
  *holder = 0;
  release();
  // A master that exits between our open and our lock unlinks the file we opened: the lock
  // would then guard a name nobody sees. Retry on the new file a few times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644));
    if (!fd) {
      int err = errno;
      if (err == ELOOP) {
        return Status::Config("pidfile " + path +
                              " is a symbolic link; refusing to follow it (remove it or "
                              "point [server] pidfile at the real file)");
      }
      return Status::Io("cannot open pidfile " + path, err);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Status::Io("cannot stat pidfile " + path, errno);
    if (!S_ISREG(st.st_mode)) {
      return Status::Config("pidfile " + path + " is not a regular file; refusing to use it");
    }
    if (st.st_nlink > 1) {
      // A hard link planted to another file (the path is in a directory others can write)
      // would make us truncate that file.
      return Status::Config("pidfile " + path + " has " + std::to_string(st.st_nlink) +
                            " hard links; refusing to write it");
    }
    if (lock_whole_file(fd.get(), F_WRLCK, F_SETLK) != 0) {
      int err = errno;
      if (err == EAGAIN || err == EACCES) {
        *holder = lock_holder(fd.get());
        return Status::Config("pidfile " + path + " is locked by another running master" +
                              (*holder > 0 ? " (pid " + std::to_string(*holder) + ")" : "") +
                              "; refusing to start a second one with the same pidfile");
      }
      return Status::Io("cannot lock pidfile " + path, err);
    }
    struct stat now {};
    if (::lstat(path.c_str(), &now) != 0 || !same_file(now, st.st_dev, st.st_ino)) {
      continue;  // replaced or removed while we waited: start over on what is there now
    }
    // Ours now: whatever it held (a stale pid) is replaced.
    std::string text = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 ||
        ::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      int err = errno;
      ::unlink(path.c_str());
      return Status::Io("cannot write pidfile " + path, err);
    }
    path_ = path;
    fd_ = std::move(fd);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    return Status::Ok();
  }
  return Status::Config("pidfile " + path + " keeps being replaced; refusing to use it");
}

void Pidfile::release() {
  if (!fd_) return;
  // Unlink while still holding the lock: a master starting now either fails to lock this
  // file or, once we are gone, creates a fresh one. A path that names another file now (a
  // newer master's) is left alone.
  struct stat now {};
  if (::lstat(path_.c_str(), &now) == 0 && same_file(now, dev_, ino_)) ::unlink(path_.c_str());
  fd_.reset();
  path_.clear();
}

void Pidfile::hand_over() {
  fd_.reset();
  path_.clear();
}

}  // namespace aiowsgi::master
