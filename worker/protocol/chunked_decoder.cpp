// ChunkedDecoder: see chunked_decoder.h. Decoded here rather than by libhttp-parser because
// Debian builds it with HTTP_PARSER_STRICT=0, which accepts any two bytes as the CRLF after
// chunk data: a front proxy and this server could then disagree on where a body ends.
//
// Decisions a reader may look for:
// - A chunked body over max_body_bytes is rejected (413) as soon as a chunk-size line
//   declares more than the remaining allowance, before its data is read.
// - A chunk size is at most kMaxChunkSizeDigits hex digits (leading zeros included) and must
//   fit in 64 bits: either failure is malformed framing, 400, whatever max_body_bytes says.
// - BWS is allowed only between the size and a chunk-ext; trailer fields are checked for
//   syntax, then dropped.

#include "worker/protocol/chunked_decoder.h"

#include <algorithm>
#include <limits>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {

using char_class::is;

void ChunkedDecoder::reset(Limits limits) {
  limits_ = limits;
  limits_.max_overhead_bytes = std::max(limits_.max_overhead_bytes, kMinOverheadBytes);
  state_ = State::kChunkSize;
  chunk_remaining_ = 0;
  body_bytes_ = 0;
  chunk_digits_ = 0;
  overhead_ = 0;
  error_status_ = 0;
  error_reason_ = {};
}

ChunkedDecoder::Result ChunkedDecoder::fail(int status, std::string_view reason) {
  state_ = State::kError;
  error_status_ = status;
  error_reason_ = reason;
  return Result::kError;
}

ChunkedDecoder::Result ChunkedDecoder::feed(const char* data, size_t len, size_t* consumed,
                                            std::string* out) {
  *consumed = 0;
  if (state_ == State::kError) return Result::kError;
  const uint64_t max_body = limits_.max_body_bytes;
  const size_t max_overhead = limits_.max_overhead_bytes;
  State st = state_;
  size_t i = 0;
  while (i < len && st != State::kDone) {
    const char c = data[i];
    switch (st) {
      case State::kChunkSize:
        if (is(char_class::kHex, c)) {
          if (++chunk_digits_ > kMaxChunkSizeDigits) {
            return fail(400, "chunk size has too many digits");
          }
          if (chunk_remaining_ > (std::numeric_limits<uint64_t>::max() >> 4)) {
            return fail(400, "chunk size overflow");
          }
          chunk_remaining_ =
              (chunk_remaining_ << 4) | static_cast<uint64_t>(char_class::hex_value(c));
          ++i;
          break;
        }
        if (chunk_digits_ == 0 || (c != '\r' && c != ';' && c != ' ' && c != '\t')) {
          return fail(400, "invalid chunk size");
        }
        // The size is complete and well formed (a malformed one got its 400 first) and
        // already passes the limit: no need to wait for the bytes.
        if (max_body != 0 && chunk_remaining_ > max_body - body_bytes_) {
          return fail(413, "chunked body over max_body_bytes");
        }
        st = c == '\r' ? State::kChunkSizeLf : c == ';' ? State::kChunkExt : State::kChunkSizeWs;
        ++i;
        break;
      case State::kChunkSizeWs:  // BWS is only allowed before a chunk-ext
        if (c == ';') {
          st = State::kChunkExt;
        } else if (c != ' ' && c != '\t') {
          return fail(400, "invalid chunk size line");
        } else if (++overhead_ > max_overhead) {  // BWS is not endless either
          return fail(400, "chunk size line too long");
        }
        ++i;
        break;
      case State::kChunkExt: {
        const size_t start = i;
        while (i < len && is(char_class::kField, data[i])) ++i;
        overhead_ += i - start;
        if (overhead_ > max_overhead) return fail(400, "chunk extensions too long");
        if (i == len) break;
        if (data[i] != '\r') return fail(400, "invalid chunk extension");
        st = State::kChunkSizeLf;
        ++i;
        break;
      }
      case State::kChunkSizeLf:
        if (c != '\n') return fail(400, "chunk size line not ended by CRLF");
        chunk_digits_ = 0;
        st = chunk_remaining_ == 0 ? State::kTrailerStart : State::kChunkData;
        ++i;
        break;
      case State::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_remaining_, len - i));
        out->append(data + i, take);
        body_bytes_ += take;
        chunk_remaining_ -= take;
        i += take;
        if (chunk_remaining_ == 0) st = State::kChunkDataCr;
        break;
      }
      case State::kChunkDataCr:
      case State::kChunkDataLf:
        if (c != (st == State::kChunkDataCr ? '\r' : '\n')) {
          return fail(400, "chunk data not followed by CRLF");
        }
        st = st == State::kChunkDataCr ? State::kChunkDataLf : State::kChunkSize;
        ++i;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          st = State::kFinalLf;
          ++i;
          break;
        }
        if (!is(char_class::kToken, c)) return fail(400, "invalid trailer field");
        st = State::kTrailerName;
        break;
      case State::kTrailerName:
      case State::kTrailerValue: {
        const uint8_t cls = st == State::kTrailerName ? char_class::kToken : char_class::kField;
        const size_t start = i;
        while (i < len && is(cls, data[i])) ++i;
        overhead_ += i - start;
        if (overhead_ > max_overhead) return fail(431, "trailers too long");
        if (i == len) break;
        if (st == State::kTrailerName && data[i] == ':') {
          st = State::kTrailerValue;
        } else if (st == State::kTrailerValue && data[i] == '\r') {
          st = State::kTrailerLf;
        } else {
          return fail(400, "invalid trailer field");
        }
        ++i;
        break;
      }
      case State::kTrailerLf:
        if (c != '\n') return fail(400, "bare CR in trailer");
        st = State::kTrailerStart;
        ++i;
        break;
      case State::kFinalLf:
        if (c != '\n') return fail(400, "chunked body not ended by CRLF");
        st = State::kDone;
        ++i;
        break;
      case State::kDone:
      case State::kError:
        return fail(400, "internal: bad chunked state");
    }
  }
  state_ = st;
  *consumed = i;
  return st == State::kDone ? Result::kDone : Result::kIncomplete;
}

}  // namespace aiowsgi::worker
