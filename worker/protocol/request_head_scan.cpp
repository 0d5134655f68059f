// RequestParser's first step: the byte-level pre-scan of the head (line structure, forbidden
// bytes, the field-line limit), run on each read before the tokenizer sees complete lines.
// Workers, no Python. The decisions it enforces are listed in request_parser.cpp.

#include <cstring>

#include "worker/protocol/char_class.h"
#include "worker/protocol/request_parser_impl.h"

namespace aiowsgi::worker {
namespace {

using char_class::skip_plain;
constexpr uint8_t kRequestLineChar = char_class::kRequestLine;
constexpr uint8_t kFieldChar = char_class::kField;

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

// See request_parser_impl.h.
size_t RequestParser::Impl::scan_head(RequestParser* r, const char* data, size_t n, bool* done) {
  ScanState st = r->scan_state_;
  size_t i = 0;
  while (i < n) {
    const char c = data[i];
    switch (st) {
      case ScanState::kLeading:
        if (c == '\r') {
          st = ScanState::kLeadingLf;
          ++i;
        } else {
          st = ScanState::kRequestLine;  // reprocess c as the first request-line byte
        }
        break;
      case ScanState::kLeadingLf:
      case ScanState::kRequestLineLf:
      case ScanState::kFieldLineLf:
        if (c != '\n') return failed(r, 400, "bare CR in request head");
        if (st == ScanState::kRequestLineLf && r->request_line_spaces_ != 2) {
          return failed(r, 400, "malformed request line");
        }
        st = st == ScanState::kLeadingLf ? ScanState::kLeading : ScanState::kLineStart;
        ++i;
        break;
      case ScanState::kRequestLine:
        if (r->request_line_spaces_ == 2) {
          // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3), matched byte by byte so
          // the tokenizer can read the digits at fixed offsets.
          static constexpr std::string_view kVersion = "HTTP/0.0";
          // The whole version in this read (the usual case): matched in one step.
          if (r->version_pos_ == 0 && n - i >= kVersion.size() &&
              std::memcmp(data + i, "HTTP/", 5) == 0 && is_digit(data[i + 5]) &&
              data[i + 6] == '.' && is_digit(data[i + 7])) {
            r->version_pos_ = kVersion.size();
            i += kVersion.size();
            break;
          }
          if (c == '\r' && r->version_pos_ == kVersion.size()) {
            st = ScanState::kRequestLineLf;
          } else if (r->version_pos_ == kVersion.size() ||
                     !(kVersion[r->version_pos_] == '0' ? (c >= '0' && c <= '9')
                                                        : c == kVersion[r->version_pos_])) {
            return failed(r, 400,
                          c == '\n'  ? "bare LF in request line"
                          : c == ' ' ? "malformed request line"
                                     : "malformed HTTP version");
          } else {
            ++r->version_pos_;
          }
          ++i;
          break;
        }
        i = skip_plain(data, i, n, 0x21, kRequestLineChar);
        if (i == n) break;
        if (data[i] == ' ') {
          ++r->request_line_spaces_;
        } else if (data[i] == '\r') {
          st = ScanState::kRequestLineLf;
        } else {
          return failed(
              r, 400,
              data[i] == '\n' ? "bare LF in request line" : "control character in request line");
        }
        ++i;
        break;
      case ScanState::kLineStart:
        if (c == '\r') {
          st = ScanState::kFinalLf;
          ++i;
        } else if (c == ' ' || c == '\t') {
          return failed(r, 400, "obs-fold or whitespace at the start of a field line");
        } else {
          // An endless run of tiny fields stops at the first byte of the field past the
          // limit. The 431 waits until the tokenizer has seen the lines before it: an
          // error it finds there comes first in the byte stream, and must win whether
          // or not those bytes arrived in the same read as this one.
          const size_t max_fields = r->limits_.max_header_fields;
          if (max_fields != 0 && ++r->field_lines_ > max_fields) {
            r->too_many_fields_ = true;
            r->scan_state_ = st;
            return i;
          }
          st = ScanState::kFieldLine;
        }
        break;
      case ScanState::kFieldLine:
        i = skip_plain(data, i, n, 0x20, kFieldChar);
        if (i == n) break;
        if (data[i] != '\r') {
          return failed(
              r, 400,
              data[i] == '\n' ? "bare LF in header field" : "control character in header field");
        }
        st = ScanState::kFieldLineLf;
        ++i;
        break;
      case ScanState::kFinalLf:
        if (c != '\n') return failed(r, 400, "bare CR in request head");
        r->scan_state_ = st;
        *done = true;
        return i + 1;
    }
  }
  r->scan_state_ = st;
  return n;
}

}  // namespace aiowsgi::worker
