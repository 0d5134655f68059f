// Shared by the libFuzzer targets (<part>/*_fuzz.cpp): an invariant check that stays on in
// every build type (assert() vanishes under NDEBUG) and names the broken invariant, and a
// copy of each fed piece into its own exactly-sized heap block so ASan catches any read past
// the bytes a parser was given, not only past the whole input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace aiowsgi::fuzz {

// Owns a heap copy of one piece of input; data() is exactly size() bytes long.
class Piece {
 public:
  explicit Piece(std::string_view s) : buf_(new char[s.empty() ? 1 : s.size()]), len_(s.size()) {
    if (len_ != 0) std::memcpy(buf_.get(), s.data(), len_);
  }
  const char* data() const { return buf_.get(); }
  size_t size() const { return len_; }

 private:
  std::unique_ptr<char[]> buf_;
  size_t len_;
};

// Piece sizes derived from one fuzzer-chosen byte: 1..256 bytes, so both byte-at-a-time and
// larger reads are explored.
inline size_t piece_size(unsigned char b) { return static_cast<size_t>(b) + 1; }

}  // namespace aiowsgi::fuzz
