// GuardedBuffer: test helper for parsers of untrusted bytes. Copies the input so that its last
// byte is the last readable byte before a PROT_NONE page: any read past the input crashes the
// test instead of passing silently (picohttpparser's test does the same). Unit tests only.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace aiowsgi::test_support {

class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::string_view s) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t data_pages = (s.size() + page - 1) / page + 1;
    size_ = (data_pages + 1) * page;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<char*>(m);
    if (mprotect(base_ + data_pages * page, page, PROT_NONE) != 0) std::abort();
    data_ = base_ + data_pages * page - s.size();
    if (!s.empty()) std::memcpy(data_, s.data(), s.size());
    len_ = s.size();
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  GuardedBuffer(GuardedBuffer&&) = delete;
  GuardedBuffer& operator=(GuardedBuffer&&) = delete;
  ~GuardedBuffer() { munmap(base_, size_); }

  const char* data() const { return data_; }
  size_t size() const { return len_; }
  std::string_view view() const { return {data_, len_}; }

 private:
  char* base_ = nullptr;
  char* data_ = nullptr;
  size_t len_ = 0;
  size_t size_ = 0;
};

}  // namespace aiowsgi::test_support
