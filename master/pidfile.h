// Pidfile: server.pidfile, written by the master after binding and locked for the master's
// whole life, so that a second master started with the same file refuses to run instead of
// overwriting it, and a file left by a master that died is taken over. Master only; no Python.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::master {

class Pidfile {
 public:
  Pidfile() = default;
  ~Pidfile() { release(); }
  Pidfile(const Pidfile&) = delete;
  Pidfile& operator=(const Pidfile&) = delete;

  // Opens or creates |path| (0644) without following a symbolic link, takes an exclusive
  // fcntl lock on it and writes "<getpid()>\n". A file no process locks is stale and is taken
  // over; nothing is truncated before the lock is ours. Errors: a symbolic link, not a regular
  // file, more than one hard link, I/O failures; when another process holds the lock,
  // *holder is set to its pid (or -1 when unknown) and the status names it. *holder is 0
  // otherwise.
  Status acquire(const std::string& path, pid_t* holder);

  // Removes the file if the path still names the file this process locked, then drops the
  // lock. Never fails loudly: called on the way out. A no-op when nothing is held.
  void release();
  // Drops the lock but leaves the file, still naming this process: the master an upgrade
  // started takes it over and writes its own pid, so the path never goes missing.
  void hand_over();

  // The locked file, -1 when none: a forked worker closes it (master/arbiter.cpp).
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace aiowsgi::master
