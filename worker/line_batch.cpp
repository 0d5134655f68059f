#include "worker/line_batch.h"

#include <cstring>
#include <utility>

namespace aiowsgi::worker {

LineBatch::LineBatch(size_t capacity, size_t max_write, Writer writer)
    : capacity_(capacity),
      max_write_(max_write == 0 ? capacity : max_write),
      writer_(std::move(writer)),
      buf_(new char[capacity]) {}

void LineBatch::append(std::string_view line) {
  if (size_ + line.size() > capacity_) flush();
  if (line.size() > capacity_) {
    write_chunked(line.data(), line.size());
    return;
  }
  std::memcpy(buf_.get() + size_, line.data(), line.size());
  size_ += line.size();
}

void LineBatch::flush() {
  if (size_ == 0) return;
  write_chunked(buf_.get(), size_);
  size_ = 0;
}

void LineBatch::write_chunked(const char* data, size_t len) {
  while (len > 0) {
    size_t n = len;
    if (n > max_write_) {
      // The last line end within max_write_ bytes; a longer first line goes out whole.
      std::string_view head(data, max_write_);
      size_t nl = head.rfind('\n');
      if (nl != std::string_view::npos) {
        n = nl + 1;
      } else {
        const void* end = std::memchr(data, '\n', len);
        n = end != nullptr ? static_cast<size_t>(static_cast<const char*>(end) - data) + 1 : len;
      }
    }
    if (!writer_(data, n)) return;
    data += n;
    len -= n;
  }
}

}  // namespace aiowsgi::worker
