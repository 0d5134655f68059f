// RequestParser: the head is parsed in two steps, a byte-level pre-scan (line structure,
// forbidden bytes, limits; request_head_scan.cpp) and a tokenizer here that splits each
// complete line; a Content-Length body is counted here, a chunked one decoded by
// ChunkedDecoder. See request_parser.h.
//
// Why no library: libhttp-parser (archived upstream; Debian 12 has no C llhttp) has a fixed
// method table, so extension methods (QUERY, PURGE, MKCALENDAR, any RFC 9110 token) got 400,
// and it reads Connection, Content-Length, Transfer-Encoding and Upgrade values with its own
// state machines, which treat a tab as part of the token ("Connection: close<TAB>" was not a
// close). Debian also builds it with HTTP_PARSER_STRICT=0 (bare LF, obs-fold, a space before
// the colon, HTTP/0.9, any two bytes after chunk data), which the pre-scan already had to
// refuse. Feeding it a substitute method would have kept two parsers that must agree on where
// a message ends (request smuggling) while fixing only one of the two defects. The pre-scan
// already enforced everything about bytes and lines; what the library still did (split the
// request line at its two spaces, split a field line at its colon) is a few lines here, and
// every token is now compared after the same OWS trimming (char_class::ListElements).
// The tokenizer works on complete lines only, so a head cut anywhere parses the same as a
// whole one, and it allocates nothing: head_ and headers_ keep their capacity.
//
// Decisions a reader may look for:
// - Every line of the head must end in CRLF; a bare LF is rejected like a bare CR (RFC 9112
//   2.2 allows either choice; accepting it is a known smuggling vector).
// - Duplicate Content-Length headers are rejected even when equal (RFC 9112 6.3 allows it).
// - Transfer-Encoding lists with empty elements ("chunked,") are rejected: RFC 9110 5.6.1
//   asks recipients to ignore them, but no real client sends them, and a front proxy that
//   reads such a value differently (nginx answers 501) is how framing disagreements start.
// - Methods are an open set (RFC 9110 9.1): any token reaches the app, case as sent, its body
//   framed by Content-Length or chunked like any other. Only CONNECT (authority-form target,
//   no content) and OPTIONS (asterisk-form allowed) have rules of their own here.
// - Connection is a list of tokens: "close" ends the connection whatever the version (even
//   beside "keep-alive"); HTTP/1.0 persists only with "keep-alive". The request is an upgrade
//   when Connection lists "upgrade" and an Upgrade field is present, or for CONNECT.
// - Host (RFC 9112 3.2): exactly one in HTTP/1.1, at most one in HTTP/1.0, and its value is
//   uri-host [":" port] or empty (RFC 9110 7.2 allows an empty value when the target has no
//   authority; an empty Host passes as before). Anything else is 400.
// - Only HTTP/1.0 and HTTP/1.1 are served: any other version gets 505. A request line
//   without a version (HTTP/0.9) is malformed: 400.
// - path() ends at the first '?' or '#', query() at the first '#': clients should not send a
//   fragment, but one must not leak into QUERY_STRING.
// - Request-target forms (RFC 9112 3.2): origin-form ("/a?b") for any method; absolute-form
//   ("http://host/a?b", http and https only, no userinfo) for any method, served like its
//   origin-form with the authority standing in for Host; authority-form ("host:port") only
//   for CONNECT; asterisk-form ("*") only for OPTIONS. Anything else: 400.

#include "worker/protocol/request_parser.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "worker/protocol/char_class.h"
#include "worker/protocol/request_parser_impl.h"
#include "worker/protocol/request_target.h"

namespace aiowsgi::worker {
namespace {

using Result = RequestParser::Result;

using char_class::iequals;
using char_class::is;
using char_class::is_token;
using char_class::list_has_token;
using char_class::ListElements;
using char_class::trim_ows;

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

// Tokenizes the lines of head_ completed since the last call (the pre-scan has checked
// every byte of them, and that each ends in CRLF), and checks the head once its empty line
// is in. Searching resumes where the last call stopped, so a head arriving a byte at a time
// costs one pass. Returns false after recording the error.
bool RequestParser::Impl::parse_lines(RequestParser* r) {
  const std::string_view head(r->head_);
  while (true) {
    const size_t lf = head.find('\n', r->searched_);
    if (lf == std::string_view::npos) {
      r->searched_ = head.size();
      return true;
    }
    const std::string_view line = head.substr(r->line_start_, lf - 1 - r->line_start_);
    r->line_start_ = r->searched_ = lf + 1;
    if (!r->request_line_done_) {
      if (line.empty()) continue;  // an empty line before the request line (RFC 9112 2.2)
      if (!parse_request_line(r, line)) return false;
      r->request_line_done_ = true;
    } else if (line.empty()) {
      return check_head(r);  // the pre-scan stopped the head right after this line
    } else if (!parse_field_line(r, line)) {
      return false;
    }
  }
}

// request-line = method SP request-target SP HTTP-version (RFC 9112 3). The pre-scan
// counted exactly two SP and matched the version as "HTTP/" DIGIT "." DIGIT; whether the
// version is served is decided with the whole head (505 only for a head without a 400).
bool RequestParser::Impl::parse_request_line(RequestParser* r, std::string_view line) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 + 1);
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (method.empty()) return rejected(r, 400, "malformed request line");
  if (!is_token(method)) return rejected(r, 400, "method is not a token");
  if (target.empty()) return rejected(r, 400, "empty request target");
  r->method_ = span_of(r, method);
  r->target_ = span_of(r, target);
  r->http_major_ = static_cast<uint8_t>(version[5] - '0');
  r->http_minor_ = static_cast<uint8_t>(version[7] - '0');
  return check_target(r);
}

// field-line = field-name ":" OWS field-value OWS (RFC 9112 5). The name must be a token:
// whitespace before the colon is a 400 (5.1). The value's bytes were checked by the
// pre-scan; its OWS is trimmed here, so every consumer of header_value() sees it trimmed.
bool RequestParser::Impl::parse_field_line(RequestParser* r, std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return rejected(r, 400, "header line without a colon");
  const std::string_view name = line.substr(0, colon);
  if (name.empty()) return rejected(r, 400, "empty header field name");
  if (!is_token(name)) {
    return rejected(r, 400,
                    name.find_first_of(" \t") != std::string_view::npos
                        ? "whitespace in header field name"
                        : "invalid character in header field name");
  }
  const std::string_view value = trim_ows(line.substr(colon + 1));
  r->headers_.push_back({span_of(r, name), span_of(r, value)});
  return true;
}

// Sorts the request-target into its form (see the decisions above) and sets origin_ and
// authority_. Returns false after recording the error.
bool RequestParser::Impl::check_target(RequestParser* r) {
  const std::string_view t = r->target();
  r->origin_ = r->target_;
  r->authority_ = {};
  const std::string_view method = r->method();
  if (method == "CONNECT") {
    // authority-form = uri-host ":" port (RFC 9112 3.2.3): the port is required here.
    const size_t colon = t.rfind(':');
    const bool has_port = colon != std::string_view::npos && colon + 1 < t.size() &&
                          (t.front() != '[' || colon > t.find(']'));
    return (has_port && valid_authority(t)) || rejected(r, 400, "CONNECT target is not host:port");
  }
  if (t == "*") {
    return method == "OPTIONS" || rejected(r, 400, "asterisk-form target outside OPTIONS");
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
bool RequestParser::Impl::check_head(RequestParser* r) {
  if (r->http_major_ != 1 || r->http_minor_ > 1) {
    return rejected(r, 505, "HTTP version not supported");
  }
  const bool http11 = r->http_minor_ == 1;
  size_t hosts = 0;
  size_t lengths = 0;
  bool has_te = false;
  bool te_chunked_last = false;  // the final transfer coding is chunked
  size_t te_chunked = 0;         // how many times chunked appears
  bool te_other = false;         // a coding we do not decode
  bool te_empty = false;         // an empty list element ("chunked,")
  bool conn_close = false, conn_keep_alive = false, conn_upgrade = false;
  bool has_upgrade = false;
  for (size_t i = 0; i < r->headers_.size(); ++i) {
    const std::string_view name = r->header_name(i);
    const std::string_view value = r->header_value(i);
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) {
          ++hosts;
          // RFC 9112 3.2: an invalid Host value is a 400 like a missing one.
          if (!value.empty() && !valid_authority(value)) {
            return rejected(r, 400, "invalid Host value");
          }
        }
        break;
      case 6:
        // RFC 9110 10.1.1: an HTTP/1.0 client never waits for 100 Continue, and a server
        // must ignore the expectation there.
        if (http11 && iequals(name, "expect") && list_has_token(value, "100-continue")) {
          r->expect_continue_ = true;
        }
        break;
      case 7:
        if (iequals(name, "upgrade") && !value.empty()) has_upgrade = true;
        break;
      case 10:
        if (iequals(name, "connection")) {
          ListElements list(value);
          for (std::string_view option; list.next(&option);) {
            conn_close |= iequals(option, "close");
            conn_keep_alive |= iequals(option, "keep-alive");
            conn_upgrade |= iequals(option, "upgrade");
          }
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
          ListElements list(value);
          for (std::string_view coding; list.next(&coding);) {
            if (coding.empty()) {
              te_empty = true;
              continue;
            }
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
  if (hosts == 0 && http11) return rejected(r, 400, "HTTP/1.1 request without Host");
  if (has_te) {
    // RFC 9112 6.1 and 6.3: TE with CL, TE in HTTP/1.0, or a final coding other than
    // chunked leave the body length undeterminable: 400 and close.
    if (lengths > 0) return rejected(r, 400, "both Transfer-Encoding and Content-Length");
    if (!http11) return rejected(r, 400, "Transfer-Encoding in HTTP/1.0");
    if (!te_chunked_last) return rejected(r, 400, "final transfer coding is not chunked");
    if (te_chunked > 1) return rejected(r, 400, "chunked applied more than once");
    if (te_other) return rejected(r, 501, "unsupported transfer coding");
    if (te_empty) return rejected(r, 400, "malformed Transfer-Encoding");
    r->chunked_ = true;
  }
  const bool connect = r->method() == "CONNECT";
  if (connect && r->has_body()) return rejected(r, 400, "CONNECT with content");  // 9110 9.3.6
  if (r->limits_.max_body_bytes != 0 && r->content_length_ &&
      *r->content_length_ > r->limits_.max_body_bytes) {
    return rejected(r, 413, "Content-Length over max_body_bytes");
  }
  // RFC 9112 9.3: "close" wins; HTTP/1.0 persists only when asked to.
  r->keep_alive_ = !conn_close && (http11 || conn_keep_alive);
  r->upgrade_ = connect || (conn_upgrade && has_upgrade);
  if (r->chunked_) {
    r->body_state_ = BodyState::kChunked;
    // Made for the connection's first chunked body and kept: a connection that never sends
    // one (nearly all) carries no decoder.
    if (!r->chunked_body_) r->chunked_body_ = std::make_unique<ChunkedDecoder>();
    r->chunked_body_->reset({.max_body_bytes = r->limits_.max_body_bytes,
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

RequestParser::RequestParser(Limits limits) : limits_(limits) {
  // Spans are 32-bit offsets into head_.
  limits_.max_header_bytes =
      std::min<size_t>(limits_.max_header_bytes, std::numeric_limits<uint32_t>::max() / 2);
  // Nothing reserved up front: a connection keeps its parser (and what it reserved) as long
  // as it is open, held requests included. feed_head() sizes both for the head it sees.
  reset();
}

void RequestParser::reset() {
  head_.clear();
  method_ = {};
  target_ = {};
  origin_ = {};
  authority_ = {};
  headers_.clear();
  head_bytes_ = 0;
  line_start_ = 0;
  searched_ = 0;
  request_line_done_ = false;
  http_major_ = 0;
  http_minor_ = 0;
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
  const size_t room = limits_.max_header_bytes - head_bytes_;
  const size_t n = std::min(len, room);
  if (n > 0) {
    bool done = false;
    const size_t m = Impl::scan_head(this, data, n, &done);
    if (m == Impl::kFail) return Result::kError;
    try {
      // One allocation each for what this call adds, none once a connection's buffers have
      // grown to its usual head: head_ by the bytes scanned, headers_ by the field lines the
      // pre-scan counted (when it counts them). Growth stays geometric, so a head arriving a
      // byte at a time costs no more copying than a whole one.
      auto grow = [](auto& v, size_t want) {
        if (want > v.capacity()) v.reserve(std::max(want, 2 * v.capacity()));
      };
      grow(head_, head_.size() + m);
      grow(headers_, field_lines_);
      head_.append(data, m);
      head_bytes_ += m;
      if (!Impl::parse_lines(this)) {
        *consumed = m;
        return Result::kError;
      }
    } catch (...) {
      Impl::fail(this, 400, "out of memory");
      *consumed = m;
      return Result::kError;
    }
    if (too_many_fields_) {
      Impl::fail(this, 431, "more header fields than max_header_fields");
      *consumed = m;
      return Result::kError;
    }
    if (done != head_complete_) {  // cannot happen: the pre-scan and the tokenizer agree
      Impl::fail(this, 400, "request head not recognised");
      *consumed = m;
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
    const ChunkedDecoder::Result res = chunked_body_->feed(data, len, consumed, out);
    body_bytes_ = chunked_body_->body_bytes();
    if (res == ChunkedDecoder::Result::kError) {
      Impl::fail(this, chunked_body_->error_status(), chunked_body_->error_reason());
      return Result::kError;
    }
    if (res == ChunkedDecoder::Result::kDone) body_state_ = BodyState::kDone;
  }
  if (body_state_ != BodyState::kDone) return Result::kIncomplete;
  message_complete_ = true;
  return Result::kMessageComplete;
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

int RequestParser::http_major() const { return http_major_; }
int RequestParser::http_minor() const { return http_minor_; }
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
