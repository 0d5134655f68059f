// BodyBuffer: a request body read completely before the app runs ([limits] buffer_body_bytes,
// uWSGI's post-buffering): in memory up to a limit, beyond it in an unlinked temporary file,
// so that wsgi.input can read it at any offset (seek) and a slow upload never holds a core.
// Workers only, on the loop's thread; no Python, no GIL needed.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::worker {

class BodyBuffer {
 public:
  // Keeps up to |memory_limit| bytes in memory; a body that grows past it moves, whole, into
  // a temporary file in |temp_dir| (created only then), and stays there.
  BodyBuffer(size_t memory_limit, std::string temp_dir)
      : memory_limit_(memory_limit), temp_dir_(std::move(temp_dir)) {}
  BodyBuffer(const BodyBuffer&) = delete;
  BodyBuffer& operator=(const BodyBuffer&) = delete;

  // The body will be |total| bytes (its Content-Length): one past the memory limit goes to
  // the file from its first byte instead of being copied there later; a smaller one gets its
  // memory at once, up to kMaxReserve. Only a hint: append() still decides.
  void expect(uint64_t total);
  // Adds bytes at the end. Fails (kIo, naming the file and errno: ENOSPC, EACCES, ...) when
  // the temporary file cannot be created or written; the buffer is then unusable.
  Status append(const char* data, size_t n);
  uint64_t size() const { return size_; }
  bool on_disk() const { return static_cast<bool>(file_); }
  static constexpr size_t kMaxReserve = 256 * 1024;
  // Copies up to |n| bytes from |offset| into |out| (replacing its contents). Returns the
  // bytes copied (0 at or past the end), or -1 with errno set if the file cannot be read.
  ssize_t read_at(uint64_t offset, size_t n, std::string* out) const;

 private:
  Status spill();  // creates the file and moves the memory part into it
  Status write_file(const char* data, size_t n);

  size_t memory_limit_;
  std::string temp_dir_;
  std::string memory_;  // the body while it fits, empty once on disk
  UniqueFd file_;       // unlinked: it goes away with the fd, whatever happens to the worker
  uint64_t size_ = 0;
  bool spill_early_ = false;  // expect() said the body will not fit
};

// Opens a new unlinked file for reading and writing in |dir|: O_TMPFILE where the kernel and
// the file system have it, else mkstemp + unlink. Close-on-exec, mode 0600. An invalid fd on
// failure, errno set.
UniqueFd open_unlinked_temp(const std::string& dir);

// The folder temporary body files go to when [server] temp_dir is "": $TMPDIR, else /tmp.
std::string default_temp_dir();

}  // namespace aiowsgi::worker
