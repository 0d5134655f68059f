// FdSink: the spdlog sink of every aiowsgi log (server log and access log), in the master and
// the workers. No Python.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi {

// Writes each formatted line with one write(2). Not spdlog's file sinks: they go through a
// FILE* buffer, which _exit() in a worker discards and which fork() would duplicate, and
// several processes appending to one file need whole-line writes (O_APPEND) to keep lines
// intact. base_sink's mutex makes it safe for worker threads too.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Logs to stderr (not owned).
  FdSink() = default;
  // Logs to |path|, already opened as |fd| (owned).
  FdSink(std::string path, UniqueFd fd) : path_(std::move(path)), file_(std::move(fd)) {}

  bool to_file() const { return file_.get() >= 0; }

  // The process's standard output (1) or error (2) as the logs see them: the fd itself, or
  // the copy a worker keeps once its fds 1 and 2 have become the app's output pipes
  // (log::keep_standard_streams_apart()).
  static int standard_fd(int stream) {
    return standard_fds_[stream == STDOUT_FILENO ? 0 : 1].load(std::memory_order_relaxed);
  }
  static void set_standard_fd(int stream, int fd) {
    standard_fds_[stream == STDOUT_FILENO ? 0 : 1].store(fd, std::memory_order_relaxed);
  }

  // Writes formatted lines as they are, under the sink's lock (a reopen may be swapping the
  // file), whatever the logger's level.
  void write_raw(std::string_view lines) {
    std::lock_guard<std::mutex> lock(mutex_);
    write_fd(lines.data(), lines.size());
  }

  Status reopen() {
    // A standard stream is not rotated, and reopening it by name would take the worker's
    // own fd 1 or 2 (the app's output pipe).
    if (!to_file() || standard_stream(path_) >= 0) return Status::Ok();
    UniqueFd fd;
    Status s = open_log_file(path_, &fd);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(mutex_);
    file_ = std::move(fd);  // closes the old file after the swap, under the lock
    return Status::Ok();
  }

  // O_NOFOLLOW: the master opens the file as root, often in a folder the server's user can
  // write; a symbolic link planted there must not make root append to (or create) another
  // file.
  static Status open_log_file(const std::string& path, UniqueFd* out) {
    // /dev/stdout and /dev/stderr (what container users write) are symbolic links into
    // /proc: they name the master's own standard streams, so take those directly.
    if (int stream = standard_stream(path); stream >= 0) {
      int fd = ::fcntl(standard_fd(stream), F_DUPFD_CLOEXEC, 3);
      if (fd < 0) return Status::Io("cannot use " + path + " as the log file", errno);
      out->reset(fd);
      return Status::Ok();
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                    0644);
    if (fd < 0) {
      if (errno == ELOOP) {
        return Status::Config("log file " + path +
                              " is a symbolic link; refusing to follow it (name the real file, "
                              "or leave [log] file empty for stderr)");
      }
      return Status::Io("cannot open log file " + path, errno);
    }
    out->reset(fd);
    return Status::Ok();
  }

  // Gives the open log file to |uid|:|gid| (by descriptor: the path may have been replaced
  // since it was opened). Nothing to do when logging to stderr.
  Status chown_file(uid_t uid, gid_t gid) {
    std::lock_guard<std::mutex> lock(mutex_);
    // A standard stream is the caller's terminal or pipe, not a file of ours to give away.
    if (file_.get() < 0 || standard_stream(path_) >= 0) return Status::Ok();
    if (::fchown(file_.get(), uid, gid) != 0)
      return Status::Io("cannot chown log file " + path_, errno);
    return Status::Ok();
  }

  // 1 or 2 for "/dev/stdout" or "/dev/stderr", else -1.
  static int standard_stream(const std::string& path) {
    if (path == "/dev/stdout") return STDOUT_FILENO;
    if (path == "/dev/stderr") return STDERR_FILENO;
    return -1;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    write_fd(buf.data(), buf.size());
  }
  void flush_() override {}

 private:
  // With the lock held.
  void write_fd(const char* p, size_t left) {
    int fd = to_file() ? file_.get() : standard_fd(STDERR_FILENO);
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // nowhere left to report a logging failure
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }

  static inline std::atomic<int> standard_fds_[2] = {STDOUT_FILENO, STDERR_FILENO};
  std::string path_;
  UniqueFd file_;
};

}  // namespace aiowsgi
