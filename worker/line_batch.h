// LineBatch: log lines collected in one reused buffer and written out in batches of whole
// lines, so that a busy worker pays one write(2) per batch instead of one per line.
// Used by the access log in a worker, on the loop's thread only. No Python, no GIL, not
// thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

namespace aiowsgi::worker {

class LineBatch {
 public:
  // Writes |len| bytes (whole lines) with one write(2); true when all of them went out.
  using Writer = std::function<bool(const char* data, size_t len)>;

  // Holds up to |capacity| bytes. Each write is at most |max_write| bytes of whole lines:
  // |capacity| for a regular file (one O_APPEND write lands in one piece), PIPE_BUF for a
  // pipe or socket (a larger write may interleave with other processes' lines). A single line
  // longer than |max_write| still goes out whole in one write of its own.
  LineBatch(size_t capacity, size_t max_write, Writer writer);
  LineBatch(const LineBatch&) = delete;
  LineBatch& operator=(const LineBatch&) = delete;

  // Adds one line, which must end with '\n'. Writes out what is buffered first when the line
  // does not fit; a line longer than the whole buffer is written at once, after those.
  void append(std::string_view line);
  // Writes out everything buffered. Lines a failing writer could not take are dropped: a
  // logging failure must neither grow memory nor stop the server.
  void flush();
  void set_max_write(size_t max_write) { max_write_ = max_write == 0 ? capacity_ : max_write; }

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  void write_chunked(const char* data, size_t len);

  size_t capacity_;
  size_t max_write_;
  Writer writer_;
  std::unique_ptr<char[]> buf_;
  size_t size_ = 0;
};

}  // namespace aiowsgi::worker
