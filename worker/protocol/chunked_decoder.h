// ChunkedDecoder: incremental decoder of the chunked transfer coding of a request body, strict
// RFC 9112 7.1 (chunk sizes, extensions, CRLFs, trailer syntax). Fed by RequestParser after the
// head; used in workers, on the loop's greenlet or in a core. No Python, no allocation beyond
// the caller's output string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aiowsgi::worker {

class ChunkedDecoder {
 public:
  struct Limits {
    uint64_t max_body_bytes = 0;  // decoded body bytes; 0 = unlimited
    // Extension, BWS and trailer bytes per body: ignored, but each one costs a scan. Raised
    // to kMinOverheadBytes when smaller.
    size_t max_overhead_bytes = 0;
  };
  static constexpr size_t kMinOverheadBytes = 4096;
  // chunk-size = 1*HEXDIG. Some encoders pad sizes to a fixed width with zeros; 32 digits leave
  // room for that while a line of endless zeros, which would hold the request without ever
  // delivering a byte, is cut short. 16 significant digits fill 64 bits.
  static constexpr size_t kMaxChunkSizeDigits = 32;

  enum class Result { kIncomplete, kDone, kError };

  // Ready for a new body under |limits|.
  void reset(Limits limits);

  // Decodes body bytes, appending the data to *out. Never consumes past the final CRLF, so a
  // pipelined request stays in the caller's buffer. kIncomplete: all |len| bytes consumed.
  // kDone: *consumed bytes ended the body. kError: see error_status().
  Result feed(const char* data, size_t len, size_t* consumed, std::string* out);

  bool done() const { return state_ == State::kDone; }
  uint64_t body_bytes() const { return body_bytes_; }  // decoded so far
  // After kError: 400 (bad framing, a chunk size over kMaxChunkSizeDigits or 64 bits), 413
  // (body over max_body_bytes, as soon as a chunk-size line declares it), 431 (trailers over
  // the overhead limit).
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  enum class State : uint8_t {
    kChunkSize,
    kChunkSizeWs,  // BWS after the size, before ';'
    kChunkExt,
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerStart,
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,
  };
  Result fail(int status, std::string_view reason);

  Limits limits_;
  State state_ = State::kChunkSize;
  uint64_t chunk_remaining_ = 0;  // of the current chunk
  uint64_t body_bytes_ = 0;
  size_t chunk_digits_ = 0;  // hex digits of the current chunk-size
  size_t overhead_ = 0;      // extension/BWS/trailer bytes of this body
  int error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace aiowsgi::worker
