// ResponseHead: the status and header fields an application hands to start_response,
// validated and copied once, and the response head built from that copy with the server's
// framing (Content-Length, chunked or close-delimited), Date and Connection fields.
// Workers only; pure C++ (no Python, no GIL needed), so it is unit tested and fuzzed alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace aiowsgi::worker {

enum class HeadError {
  kOk,
  kStatus,                  // not "NNN reason" with NNN in 100..599, or a CR, LF or NUL in it
  kInformational,           // a 1xx status as the final response
  kHeaderName,              // not an RFC 9110 token
  kHeaderValue,             // a CR, LF or NUL in the value: it would split the response
  kContentLength,           // not 1*DIGIT (no sign, no space), or over 2^63-1
  kDuplicateContentLength,  // a second Content-Length, even with the same value
  kTransferEncoding,        // hop-by-hop: the server frames the body itself
};

// Why |e| was refused, for the exception the app sees ("" for kOk).
const char* head_error_text(HeadError e);

// How the body of a response is delimited on the wire.
enum class Framing {
  kNone,           // no body follows (204, 304, or a HEAD response of unknown length)
  kContentLength,  // a Content-Length field (the app's, or the server's from a known length)
  kChunked,        // Transfer-Encoding: chunked (HTTP/1.1 peers only)
  kClose,          // the body ends when the server closes the connection
};

// What the server knows when it writes the head.
struct HeadOptions {
  bool http11 = true;         // an HTTP/1.1 peer: chunked framing, persistent by default
  bool head_request = false;  // HEAD: the head describes a body that is not sent
  bool keep_alive = true;     // the client and the server would keep the connection
  int64_t known_length = -1;  // the whole body's length when the server knows it, else -1
  std::string_view date;      // "Date: ...\r\n", sent unless the app gave its own Date
  std::string_view added;     // [server] add_header's fields, preformatted, sent as they are
};

struct HeadPlan {
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;  // the declared length when framing is kContentLength
  bool keep_alive = false;      // the connection may serve another request afterwards
};

// One response head. Fill it with set_status() then add_header() per field; on any error the
// object holds a partial copy and must be reset() before reuse (the caller keeps the previous
// head in another object). The copy never refers to the caller's memory. reset() keeps the
// buffer's capacity, so a reused object costs no allocation in the steady state.
class ResponseHead {
 public:
  void reset();

  // |status|: "200 OK" (PEP 3333): three digits, a space, an optional reason phrase.
  [[nodiscard]] HeadError set_status(std::string_view status);
  // A status the server answers itself (static files, canned errors), with the reason phrase
  // from reason_phrase(). |code| is 200..599.
  void set_status(int code);
  // The server's own Content-Length, where it belongs among the fields (no validation).
  void set_content_length(uint64_t n);
  // Server-made fields, each "Name: value\r\n", appended as they are: a block formatted once
  // (static files' Cache-Control) costs no parsing per response. Never Connection,
  // Content-Length, Date or Transfer-Encoding: append_head() would not know of them.
  void append_fields(std::string_view block) { fixed_.append(block); }
  // One field. Connection is not copied: its "close" option is recorded (wants_close()) and
  // the server writes the Connection field itself, so the two never disagree.
  [[nodiscard]] HeadError add_header(std::string_view name, std::string_view value);

  int status_code() const { return status_code_; }
  // 204 and 304 responses never carry a body (RFC 9110 15.3.5, 15.4.5).
  bool no_body_status() const { return status_code_ == 204 || status_code_ == 304; }
  bool has_content_length() const { return has_content_length_; }
  uint64_t content_length() const { return content_length_; }
  bool wants_close() const { return wants_close_; }
  bool has_date() const { return has_date_; }
  // "HTTP/1.1 <status>\r\n" and the copied fields, each ending in CRLF.
  std::string_view fixed() const { return fixed_; }

 private:
  std::string fixed_;
  int status_code_ = 0;
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;
  bool wants_close_ = false;
  bool has_date_ = false;
};

// Appends the whole head of a response described by |h| (status set, fields added without
// error) to *out, ending with the empty line, and says how its body is framed:
// the app's Content-Length, else one from o.known_length, else chunked for HTTP/1.1, else the
// connection closes after the body. 204/304 responses get no framing field.
HeadPlan append_head(const ResponseHead& h, const HeadOptions& o, std::string* out);

// The reason phrase the server sends with |status| ("Not Found"); "Error" for one it does not
// answer itself.
const char* reason_phrase(int status);

// Appends a chunk-size line ("1a2f\r\n") for a chunk of |n| bytes.
void append_chunk_size(std::string* out, uint64_t n);

// The decimal value of a Content-Length field: 1*DIGIT (RFC 9110 8.6), at most 2^63-1 so
// every signed offset type holds it. False for anything else (sign, space, hex, empty).
bool parse_content_length(std::string_view s, uint64_t* out);

}  // namespace aiowsgi::worker
