#include "worker/protocol/response_head.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <limits>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {

namespace {

using char_class::iequals;
using char_class::is_ows;

// CR and LF would end the field (or the head) early; NUL is refused by many peers.
bool valid_field_value(std::string_view s) { return char_class::is_field_value(s); }

// Appends the pieces to *out, growing it at most once.
void append_all(std::string* out, std::initializer_list<std::string_view> parts) {
  size_t n = out->size();
  for (std::string_view p : parts) n += p.size();
  if (n > out->capacity()) out->reserve(std::max(n, 2 * out->capacity()));
  for (std::string_view p : parts) out->append(p);
}

// RFC 9110 7.6.1: Connection = #connection-option; true when one option is "close".
bool has_close_option(std::string_view v) {
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    if (comma == std::string_view::npos) comma = v.size();
    std::string_view opt = v.substr(pos, comma - pos);
    while (!opt.empty() && is_ows(opt.front())) opt.remove_prefix(1);
    while (!opt.empty() && is_ows(opt.back())) opt.remove_suffix(1);
    if (iequals(opt, "close")) return true;
    pos = comma + 1;
  }
  return false;
}

void append_decimal(std::string* out, uint64_t n) {
  char buf[24];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  out->append(p, static_cast<size_t>(buf + sizeof buf - p));
}

}  // namespace

const char* head_error_text(HeadError e) {
  switch (e) {
    case HeadError::kOk:
      return "";
    case HeadError::kStatus:
      return "expected a status code 200..599, a space and a reason, such as '200 OK'";
    case HeadError::kInformational:
      return "a 1xx status cannot be the final response (websockets: "
             "uwsgi.websocket_handshake())";
    case HeadError::kHeaderName:
      return "the name is not a token (RFC 9110 5.6.2)";
    case HeadError::kHeaderValue:
      return "the value has a CR, LF or NUL";
    case HeadError::kContentLength:
      return "Content-Length must be decimal digits only, at most 2^63-1";
    case HeadError::kDuplicateContentLength:
      return "a response carries one Content-Length";
    case HeadError::kTransferEncoding:
      return "Transfer-Encoding is a hop-by-hop header: the server frames the body";
  }
  return "invalid";
}

bool parse_content_length(std::string_view s, uint64_t* out) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    unsigned d = static_cast<unsigned>(c - '0');
    if (v > (kMax - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

void ResponseHead::reset() {
  fixed_.clear();
  status_code_ = 0;
  has_content_length_ = false;
  content_length_ = 0;
  wants_close_ = false;
  has_date_ = false;
}

HeadError ResponseHead::set_status(std::string_view status) {
  if (status.size() < 4 || status[3] != ' ') return HeadError::kStatus;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    if (status[i] < '0' || status[i] > '9') return HeadError::kStatus;
    code = code * 10 + (status[i] - '0');
  }
  if (code < 100 || code > 599 || !valid_field_value(status)) return HeadError::kStatus;
  // A 1xx is interim: the client would read the next response as the answer to this one.
  if (code < 200) return HeadError::kInformational;
  status_code_ = code;
  append_all(&fixed_, {"HTTP/1.1 ", status, "\r\n"});
  return HeadError::kOk;
}

void ResponseHead::set_status(int code) {
  status_code_ = code;
  fixed_.append("HTTP/1.1 ");
  append_decimal(&fixed_, static_cast<uint64_t>(code));
  append_all(&fixed_, {" ", reason_phrase(code), "\r\n"});
}

void ResponseHead::set_content_length(uint64_t n) {
  has_content_length_ = true;
  content_length_ = n;
  fixed_.append("Content-Length: ");
  append_decimal(&fixed_, n);
  fixed_.append("\r\n");
}

HeadError ResponseHead::add_header(std::string_view name, std::string_view value) {
  if (!char_class::is_token(name)) return HeadError::kHeaderName;
  if (!valid_field_value(value)) return HeadError::kHeaderValue;
  // Dispatch on the length first: most fields are none of these four.
  switch (name.size()) {
    case 4:
      if (iequals(name, "date")) has_date_ = true;
      break;
    case 10:
      if (iequals(name, "connection")) {
        if (has_close_option(value)) wants_close_ = true;
        return HeadError::kOk;
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        // RFC 9110 8.6 lets a recipient fold identical values; a sender has no reason to
        // repeat the field, and two of them is how response splitting starts: refuse.
        if (has_content_length_) return HeadError::kDuplicateContentLength;
        if (!parse_content_length(value, &content_length_)) return HeadError::kContentLength;
        has_content_length_ = true;
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) return HeadError::kTransferEncoding;
      break;
    default:
      break;
  }
  append_all(&fixed_, {name, ": ", value, "\r\n"});
  return HeadError::kOk;
}

HeadPlan append_head(const ResponseHead& h, const HeadOptions& o, std::string* out) {
  HeadPlan plan;
  plan.keep_alive = o.keep_alive && !h.wants_close();
  out->append(h.fixed());
  if (h.no_body_status()) {
    plan.framing = Framing::kNone;
  } else if (h.has_content_length()) {
    plan.framing = Framing::kContentLength;
    plan.content_length = h.content_length();
  } else if (o.known_length >= 0) {
    plan.framing = Framing::kContentLength;
    plan.content_length = static_cast<uint64_t>(o.known_length);
    out->append("Content-Length: ");
    append_decimal(out, plan.content_length);
    out->append("\r\n");
  } else if (o.head_request) {
    plan.framing = Framing::kNone;  // no body follows a HEAD response whatever its framing
  } else if (o.http11) {
    plan.framing = Framing::kChunked;
    out->append("Transfer-Encoding: chunked\r\n");
  } else {
    plan.framing = Framing::kClose;  // HTTP/1.0: the body ends when the connection closes
    plan.keep_alive = false;
  }
  if (!h.has_date()) out->append(o.date);
  out->append(o.added);  // also when the app set the same field: both go out, as in uWSGI
  if (!plan.keep_alive) {
    out->append("Connection: close\r\n");
  } else if (!o.http11) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
  return plan;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

void append_chunk_size(std::string* out, uint64_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[18];
  char* p = buf + 16;
  p[0] = '\r';
  p[1] = '\n';
  do {
    *--p = kHex[n & 0xf];
    n >>= 4;
  } while (n != 0);
  out->append(p, static_cast<size_t>(buf + sizeof buf - p));
}

}  // namespace aiowsgi::worker
