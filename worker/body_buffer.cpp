#include "worker/body_buffer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace aiowsgi::worker {

UniqueFd open_unlinked_temp(const std::string& dir) {
#ifdef O_TMPFILE
  // The file never has a name: nothing is left behind even if the worker is killed.
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd) return fd;
  // EOPNOTSUPP / EISDIR / EINVAL: a file system or kernel without O_TMPFILE; the fallback
  // below may still work. Anything else (ENOENT, EACCES, ENOSPC) would fail there too.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return fd;
#endif
  std::string path = dir;
  if (path.empty() || path.back() != '/') path += '/';
  path += "aiowsgi-body-XXXXXX";
  UniqueFd named(::mkostemp(path.data(), O_CLOEXEC));
  if (!named) return named;
  // Unlinked at once: the name exists only for this moment.
  if (::unlink(path.c_str()) != 0) {
    int err = errno;
    named.reset();
    errno = err;
  }
  return named;
}

std::string default_temp_dir() {
  // Read once per worker at start-up, before the app could start threads that setenv.
  const char* env = getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("/tmp");
}

void BodyBuffer::expect(uint64_t total) {
  if (size_ != 0) return;
  if (total > memory_limit_) {
    spill_early_ = true;
  } else {
    // Only what a client that has sent nothing yet may cost: a Content-Length is a claim, and
    // with a large limit, reserving all of it would let idle clients take the worker's memory.
    memory_.reserve(static_cast<size_t>(std::min<uint64_t>(total, kMaxReserve)));
  }
}

Status BodyBuffer::append(const char* data, size_t n) {
  if (n == 0) return Status::Ok();
  if (!file_ && (spill_early_ || memory_.size() + n > memory_limit_)) {
    if (Status s = spill(); !s.ok()) return s;
  }
  if (file_) {
    if (Status s = write_file(data, n); !s.ok()) return s;
  } else {
    memory_.append(data, n);
  }
  size_ += n;
  return Status::Ok();
}

Status BodyBuffer::spill() {
  file_ = open_unlinked_temp(temp_dir_);
  if (!file_) return Status::Io("a temporary file for a request body in " + temp_dir_, errno);
  if (Status s = write_file(memory_.data(), memory_.size()); !s.ok()) return s;
  std::string().swap(memory_);  // its capacity too: the point of the file is the memory
  return Status::Ok();
}

Status BodyBuffer::write_file(const char* data, size_t n) {
  // Blocking writes on the loop, as nginx writes its client_body_temp files: they land in the
  // page cache and return at once unless the machine is already short of memory.
  while (n > 0) {
    ssize_t w = ::write(file_.get(), data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : ENOSPC;
      file_.reset();
      return Status::Io("writing a request body to a temporary file in " + temp_dir_, err);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

ssize_t BodyBuffer::read_at(uint64_t offset, size_t n, std::string* out) const {
  out->clear();
  if (offset >= size_) return 0;
  n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
  if (!file_) {
    out->assign(memory_, static_cast<size_t>(offset), n);
    return static_cast<ssize_t>(n);
  }
  out->resize(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(file_.get(), out->data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;  // cannot happen for bytes we wrote; stop rather than spin
    got += static_cast<size_t>(r);
  }
  out->resize(got);
  return static_cast<ssize_t>(got);
}

}  // namespace aiowsgi::worker
