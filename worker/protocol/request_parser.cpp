// RequestParser: the head goes through libhttp-parser 2.9.4 behind a byte-level pre-scan; a
// Content-Length body is counted here, a chunked one decoded by ChunkedDecoder. See
// request_parser.h.
//
// Why the split: Debian builds http_parser with HTTP_PARSER_STRICT=0, which accepts a bare LF
// or any byte after a CR, obs-fold continuation lines, a space before the colon, HTTP/0.9
// request lines, and any two bytes as the CRLF that ends chunk data. Each of those lets a
// front proxy and this server disagree on where a message ends (request smuggling), so the
// pre-scan enforces the line structure and the callbacks enforce the field rules, while the
// library keeps doing what it does well: method, target and field tokenization.
//
// Decisions a reader may look for:
// - Every line of the head must end in CRLF; a bare LF is rejected like a bare CR (RFC 9112
//   2.2 allows either choice; accepting it is a known smuggling vector).
// - Duplicate Content-Length headers are rejected even when equal (libhttp-parser does the
//   same, and RFC 9112 6.3 allows it).
// - Transfer-Encoding lists with empty elements ("chunked,") are rejected, as the library
//   does: RFC 9110 5.6.1 asks recipients to ignore them, but no real client sends them and
//   accepting them here while the library's framing disagrees would be worse.
// - Only HTTP/1.0 and HTTP/1.1 are served: any other version gets 505. A request line
//   without a version (HTTP/0.9) is malformed: 400.
// - path() ends at the first '?' or '#', query() at the first '#': clients should not send a
//   fragment, but one must not leak into QUERY_STRING.
// - Request-target forms (RFC 9112 3.2): origin-form ("/a?b") for any method; absolute-form
//   ("http://host/a?b", http and https only, no userinfo) for any method, served like its
//   origin-form with the authority standing in for Host; authority-form only for CONNECT
//   (the library checks it); asterisk-form ("*") only for OPTIONS. Anything else: 400.

#include "worker/protocol/request_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "worker/protocol/char_class.h"
#include "worker/protocol/request_target.h"

namespace aiowsgi::worker {
namespace {

using Result = RequestParser::Result;

using char_class::iequals;
using char_class::is;
using char_class::skip_plain;
using char_class::trim_ows;
constexpr uint8_t kRequestLineChar = char_class::kRequestLine;
constexpr uint8_t kFieldChar = char_class::kField;

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Content-Length = 1*DIGIT (RFC 9110 8.6); no sign, no list, no overflow.
std::optional<uint64_t> parse_content_length(std::string_view v) {
  if (v.empty()) return std::nullopt;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  return n;
}

}  // namespace

struct RequestParser::Impl {
  static RequestParser* self(http_parser* p) { return static_cast<RequestParser*>(p->data); }

  static void fail(RequestParser* r, int status, std::string_view reason) {
    if (r->error_status_ == 0) {
      r->error_status_ = status;
      r->error_reason_ = reason;
    }
  }
  static constexpr size_t kFail = std::string_view::npos;
  static size_t failed(RequestParser* r, int status, std::string_view reason) {
    fail(r, status, reason);
    return kFail;
  }
  static bool rejected(RequestParser* r, int status, std::string_view reason) {
    fail(r, status, reason);
    return false;
  }

  // Walks the line structure of the head (RFC 9112 2.2, 3, 5): CRLF line ends only, no
  // control characters, exactly two SP in the request line, no line starting with
  // whitespace (obs-fold, 5.2). Returns how many of the |n| bytes belong to the head and sets
  // *done when they end it; returns npos after recording an error.
  static size_t scan_head(RequestParser* r, const char* data, size_t n, bool* done) {
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
            // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3): the non-strict library
            // only spot-checks the name ("HXXP/1.1" passes), so it is matched here.
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
            // limit. The 431 waits until the library has seen the bytes before it: an
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

  // Trims the value of the last header: libhttp-parser drops leading OWS but keeps trailing.
  static void finish_header(RequestParser* r) {
    if (r->headers_.empty()) return;
    Span& v = r->headers_.back().value;
    const std::string_view t = trim_ows(std::string_view(r->head_).substr(v.off, v.len));
    v.off = static_cast<uint32_t>(t.data() - r->head_.data());
    v.len = static_cast<uint32_t>(t.size());
  }

  // Sorts the request-target into its form (see the decisions above) and sets origin_ and
  // authority_. Returns false after recording the error.
  static bool check_target(RequestParser* r) {
    const std::string_view t = r->target();
    r->origin_ = r->target_;
    r->authority_ = {};
    const auto method = static_cast<http_method>(r->parser_.method);
    if (method == HTTP_CONNECT) return true;  // authority-form, tokenized by the library
    if (t.empty()) return rejected(r, 400, "empty request target");
    if (t == "*") {
      return method == HTTP_OPTIONS || rejected(r, 400, "asterisk-form target outside OPTIONS");
    }
    if (t.front() == '/') return true;
    const size_t colon = t.find(':');
    const std::string_view scheme = t.substr(0, colon);
    if (colon == std::string_view::npos || t.substr(colon + 1, 2) != "//") {
      return rejected(r, 400, "malformed request target");
    }
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
      return rejected(r, 400, "absolute-form target with a scheme other than http(s)");
    }
    const size_t auth_start = colon + 3;
    size_t auth_end = t.find_first_of("/?#", auth_start);
    if (auth_end == std::string_view::npos) auth_end = t.size();
    if (!valid_authority(t.substr(auth_start, auth_end - auth_start))) {
      return rejected(r, 400, "invalid authority in absolute-form target");
    }
    r->authority_ = {static_cast<uint32_t>(r->target_.off + auth_start),
                     static_cast<uint32_t>(auth_end - auth_start)};
    r->origin_ = {static_cast<uint32_t>(r->target_.off + auth_end),
                  static_cast<uint32_t>(t.size() - auth_end)};
    return true;
  }

  // Framing and field rules, applied once the whole head is known. Returns false after
  // recording the error.
  static bool check_head(RequestParser* r) {
    const http_parser& p = r->parser_;
    if (p.http_major != 1 || p.http_minor > 1) {
      return rejected(r, 505, "HTTP version not supported");
    }
    if (!check_target(r)) return false;
    size_t hosts = 0;
    size_t lengths = 0;
    bool has_te = false;
    bool te_chunked_last = false;  // the final transfer coding is chunked
    size_t te_chunked = 0;         // how many times chunked appears
    bool te_other = false;         // a coding we do not decode
    for (size_t i = 0; i < r->headers_.size(); ++i) {
      const std::string_view name = r->header_name(i);
      const std::string_view value = r->header_value(i);
      switch (name.size()) {
        case 4:
          if (iequals(name, "host")) ++hosts;
          break;
        case 6:
          // RFC 9110 10.1.1: an HTTP/1.0 client never waits for 100 Continue, and a server
          // must ignore the expectation there.
          if (p.http_minor >= 1 && iequals(name, "expect") && iequals(value, "100-continue")) {
            r->expect_continue_ = true;
          }
          break;
        case 14:
          if (iequals(name, "content-length")) {
            // RFC 9112 6.3 item 5: a list or a repeat is unrecoverable framing.
            if (++lengths > 1) return rejected(r, 400, "multiple Content-Length headers");
            r->content_length_ = parse_content_length(value);
            if (!r->content_length_) return rejected(r, 400, "invalid Content-Length");
          }
          break;
        case 17:
          if (iequals(name, "transfer-encoding")) {
            has_te = true;
            // #transfer-coding (RFC 9112 6.1): empty list elements are ignored.
            std::string_view rest = value;
            while (!rest.empty()) {
              const size_t comma = rest.find(',');
              const std::string_view coding = trim_ows(rest.substr(0, comma));
              rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
              if (coding.empty()) continue;
              te_chunked_last = iequals(coding, "chunked");
              if (te_chunked_last) {
                ++te_chunked;
              } else {
                te_other = true;
              }
            }
          }
          break;
        default:
          break;
      }
    }
    if (hosts > 1) return rejected(r, 400, "multiple Host headers");
    if (hosts == 0 && p.http_minor == 1) return rejected(r, 400, "HTTP/1.1 request without Host");
    if (has_te) {
      // RFC 9112 6.1 and 6.3: TE with CL, TE in HTTP/1.0, or a final coding other than
      // chunked leave the body length undeterminable: 400 and close.
      if (lengths > 0) return rejected(r, 400, "both Transfer-Encoding and Content-Length");
      if (p.http_minor == 0) return rejected(r, 400, "Transfer-Encoding in HTTP/1.0");
      if (!te_chunked_last) return rejected(r, 400, "final transfer coding is not chunked");
      if (te_chunked > 1) return rejected(r, 400, "chunked applied more than once");
      if (te_other) return rejected(r, 501, "unsupported transfer coding");
      // The library rejects empty list elements ("chunked,") once this callback returns; fail
      // here so head_complete_ is never set on a head that ends in an error.
      if ((p.flags & F_CHUNKED) == 0) return rejected(r, 400, "malformed Transfer-Encoding");
      r->chunked_ = true;
    }
    if (p.method == HTTP_CONNECT && r->has_body()) {
      // RFC 9110 9.3.6; libhttp-parser would also stop reading at the head.
      return rejected(r, 400, "CONNECT with content");
    }
    if (r->limits_.max_body_bytes != 0 && r->content_length_ &&
        *r->content_length_ > r->limits_.max_body_bytes) {
      return rejected(r, 413, "Content-Length over max_body_bytes");
    }
    r->keep_alive_ = http_should_keep_alive(&p) != 0;
    r->upgrade_ = p.upgrade != 0;
    if (r->chunked_) {
      r->body_state_ = BodyState::kChunked;
      r->chunked_body_.reset({.max_body_bytes = r->limits_.max_body_bytes,
                              .max_overhead_bytes = r->limits_.max_header_bytes});
    } else if (r->content_length_.value_or(0) > 0) {
      r->body_state_ = BodyState::kLength;
      r->body_remaining_ = *r->content_length_;
    } else {
      r->body_state_ = BodyState::kDone;
      r->message_complete_ = true;
    }
    r->head_complete_ = true;
    return true;
  }
};

RequestParser::RequestParser(Limits limits) : limits_(limits) {
  // Spans are 32-bit offsets into head_.
  limits_.max_header_bytes =
      std::min<size_t>(limits_.max_header_bytes, std::numeric_limits<uint32_t>::max() / 2);
  // The pre-scan enforces the limit exactly; the library's own counter (80 KiB by default,
  // a process-wide setting) must never trip first. Only ever raised, never lowered.
  static uint32_t library_limit = HTTP_MAX_HEADER_SIZE;
  if (limits_.max_header_bytes >= library_limit) {
    library_limit = static_cast<uint32_t>(limits_.max_header_bytes) + 1;
    http_parser_set_max_header_size(library_limit);
  }
  http_parser_settings_init(&settings_);
  settings_.on_url = &RequestParser::on_url;
  settings_.on_header_field = &RequestParser::on_header_field;
  settings_.on_header_value = &RequestParser::on_header_value;
  settings_.on_headers_complete = &RequestParser::on_headers_complete;
  settings_.on_message_complete = &RequestParser::on_message_complete;
  // Nothing reserved up front: a connection keeps its parser (and what it reserved) as long
  // as it is open, held requests included. feed_head() sizes both for the head it sees.
  reset();
}

void RequestParser::reset() {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  head_.clear();
  method_ = {};
  target_ = {};
  origin_ = {};
  authority_ = {};
  headers_.clear();
  in_value_ = false;
  head_bytes_ = 0;
  scan_state_ = ScanState::kLeading;
  request_line_spaces_ = 0;
  version_pos_ = 0;
  field_lines_ = 0;
  too_many_fields_ = false;
  head_complete_ = false;
  message_complete_ = false;
  chunked_ = false;
  expect_continue_ = false;
  keep_alive_ = false;
  upgrade_ = false;
  content_length_.reset();
  body_state_ = BodyState::kNone;
  body_remaining_ = 0;
  body_bytes_ = 0;
  error_status_ = 0;
  error_reason_ = {};
}

RequestParser::Result RequestParser::feed_head(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (error_status_ != 0) return Result::kError;
  if (head_complete_) return Result::kHeadComplete;
  if (len == 0) return Result::kIncomplete;  // http_parser_execute reads len == 0 as EOF
  const size_t room = limits_.max_header_bytes - head_bytes_;
  const size_t n = std::min(len, room);
  if (n > 0) {
    bool done = false;
    const size_t m = Impl::scan_head(this, data, n, &done);
    if (m == Impl::kFail) return Result::kError;
    try {
      // One allocation each for what this call adds: head_ grows by at most the bytes scanned
      // (plus a method the library tokenized in an earlier call), headers_ by the field lines
      // the pre-scan counted (when it counts them). Growth stays geometric, so a head arriving
      // a byte at a time costs no more copying than it did.
      auto grow = [](auto& v, size_t want) {
        if (want > v.capacity()) v.reserve(std::max(want, 2 * v.capacity()));
      };
      grow(head_, head_.size() + m + 16);
      grow(headers_, field_lines_);
    } catch (...) {
      // Left to the callbacks, which answer an allocation failure with a 400.
    }
    // Only head bytes reach the library, so it can never run into the body. (No call with
    // m == 0: the library takes an empty buffer for the end of the stream.)
    const size_t parsed = m > 0 ? http_parser_execute(&parser_, &settings_, data, m) : 0;
    head_bytes_ += m;
    const http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK && err != HPE_PAUSED) {
      // Callback errors are already recorded with their own status.
      Impl::fail(this, err == HPE_HEADER_OVERFLOW ? 431 : 400, http_errno_description(err));
      *consumed = parsed;
      return Result::kError;
    }
    if (too_many_fields_) {
      Impl::fail(this, 431, "more header fields than max_header_fields");
      *consumed = parsed;
      return Result::kError;
    }
    if (parsed != m || done != head_complete_) {
      Impl::fail(this, 400, "request head not recognised");
      *consumed = parsed;
      return Result::kError;
    }
    if (done) {
      *consumed = m;
      return Result::kHeadComplete;
    }
  }
  if (n < len) {
    Impl::fail(this, 431, "request head over max_header_bytes");
    *consumed = n;
    return Result::kError;
  }
  *consumed = len;
  return Result::kIncomplete;
}

RequestParser::Result RequestParser::feed_body(const char* data, size_t len, size_t* consumed,
                                               std::string* out) {
  *consumed = 0;
  if (error_status_ != 0) return Result::kError;
  if (!head_complete_) {
    Impl::fail(this, 400, "feed_body before the head is complete");
    return Result::kError;
  }
  if (message_complete_) return Result::kMessageComplete;
  if (body_state_ == BodyState::kLength) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(body_remaining_, len));
    out->append(data, take);
    body_bytes_ += take;
    body_remaining_ -= take;
    *consumed = take;
    if (body_remaining_ == 0) body_state_ = BodyState::kDone;
  } else {
    const ChunkedDecoder::Result res = chunked_body_.feed(data, len, consumed, out);
    body_bytes_ = chunked_body_.body_bytes();
    if (res == ChunkedDecoder::Result::kError) {
      Impl::fail(this, chunked_body_.error_status(), chunked_body_.error_reason());
      return Result::kError;
    }
    if (res == ChunkedDecoder::Result::kDone) body_state_ = BodyState::kDone;
  }
  if (body_state_ != BodyState::kDone) return Result::kIncomplete;
  message_complete_ = true;
  return Result::kMessageComplete;
}

int RequestParser::on_url(http_parser* p, const char* at, size_t len) noexcept {
  RequestParser* r = Impl::self(p);
  try {
    if (r->method_.len == 0) {
      // The method has been tokenized by now; keep it in head_ so method() needs no lookup.
      const std::string_view m = http_method_str(static_cast<http_method>(p->method));
      r->method_ = {0, static_cast<uint32_t>(m.size())};
      r->head_.append(m);
      r->target_.off = static_cast<uint32_t>(r->head_.size());
    }
    r->head_.append(at, len);
    r->target_.len += static_cast<uint32_t>(len);
    return 0;
  } catch (...) {
    Impl::fail(r, 400, "out of memory");
    return 1;
  }
}

int RequestParser::on_header_field(http_parser* p, const char* at, size_t len) noexcept {
  RequestParser* r = Impl::self(p);
  // The non-strict library lets SP into field names (HTAB it rejects); RFC 9112 5.1 requires
  // a 400 for whitespace before the colon.
  if (std::memchr(at, ' ', len) != nullptr) {
    Impl::fail(r, 400, "whitespace in header field name");
    return 1;
  }
  try {
    if (r->headers_.empty() || r->in_value_) {  // a new field; else another piece of the name
      Impl::finish_header(r);
      const auto off = static_cast<uint32_t>(r->head_.size());
      r->headers_.push_back({{off, 0}, {off, 0}});
      r->in_value_ = false;
    }
    r->head_.append(at, len);
    r->headers_.back().name.len += static_cast<uint32_t>(len);
    return 0;
  } catch (...) {
    Impl::fail(r, 400, "out of memory");
    return 1;
  }
}

int RequestParser::on_header_value(http_parser* p, const char* at, size_t len) noexcept {
  RequestParser* r = Impl::self(p);
  if (r->headers_.empty()) {
    Impl::fail(r, 400, "header value without a name");
    return 1;
  }
  try {
    HeaderSpan& h = r->headers_.back();
    if (!r->in_value_) {
      h.value.off = static_cast<uint32_t>(r->head_.size());
      r->in_value_ = true;
    }
    r->head_.append(at, len);
    h.value.len += static_cast<uint32_t>(len);
    return 0;
  } catch (...) {
    Impl::fail(r, 400, "out of memory");
    return 1;
  }
}

int RequestParser::on_headers_complete(http_parser* p) noexcept {
  RequestParser* r = Impl::self(p);
  Impl::finish_header(r);
  return Impl::check_head(r) ? 0 : 1;
}

int RequestParser::on_message_complete(http_parser* p) noexcept {
  // Only bodiless messages complete inside the library (body bytes never reach it). Pausing
  // guarantees it would not start on a pipelined request even if it were handed more bytes.
  http_parser_pause(p, 1);
  return 0;
}

std::string_view RequestParser::method() const {
  return std::string_view(head_).substr(method_.off, method_.len);
}

std::string_view RequestParser::target() const {
  return std::string_view(head_).substr(target_.off, target_.len);
}

std::string_view RequestParser::path() const {
  const std::string_view t = std::string_view(head_).substr(origin_.off, origin_.len);
  const std::string_view p = t.substr(0, t.find_first_of("?#"));
  // "http://example.com?q" names the root: RFC 9112 3.2.1 sends it as "/?q".
  if (p.empty() && authority_.len != 0) return "/";
  return p;
}

std::string_view RequestParser::authority() const {
  return std::string_view(head_).substr(authority_.off, authority_.len);
}

std::string_view RequestParser::query() const {
  const std::string_view t = std::string_view(head_).substr(origin_.off, origin_.len);
  const size_t end = t.find('#');
  const size_t q = t.find('?');
  if (q == std::string_view::npos || q > end) return {};
  return t.substr(q + 1, end == std::string_view::npos ? std::string_view::npos : end - q - 1);
}

int RequestParser::http_major() const { return parser_.http_major; }
int RequestParser::http_minor() const { return parser_.http_minor; }
size_t RequestParser::header_count() const { return headers_.size(); }

std::string_view RequestParser::header_name(size_t i) const {
  if (i >= headers_.size()) return {};
  return std::string_view(head_).substr(headers_[i].name.off, headers_[i].name.len);
}

std::string_view RequestParser::header_value(size_t i) const {
  if (i >= headers_.size()) return {};
  return std::string_view(head_).substr(headers_[i].value.off, headers_[i].value.len);
}

bool RequestParser::keep_alive() const { return keep_alive_; }
bool RequestParser::has_body() const { return chunked_ || content_length_.value_or(0) > 0; }
bool RequestParser::chunked() const { return chunked_; }
std::optional<uint64_t> RequestParser::content_length() const { return content_length_; }
bool RequestParser::expect_continue() const { return expect_continue_; }
bool RequestParser::upgrade() const { return upgrade_; }
bool RequestParser::message_complete() const { return message_complete_; }
int RequestParser::error_status() const { return error_status_; }
std::string_view RequestParser::error_reason() const { return error_reason_; }

}  // namespace aiowsgi::worker
