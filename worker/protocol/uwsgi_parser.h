// UwsgiParser: incremental parser for the head of a uwsgi-protocol request, the binary
// packet nginx's uwsgi_pass sends (a 4-byte header, then CGI variables as length-prefixed
// key/value pairs); the raw request body of CONTENT_LENGTH bytes follows it. Used in workers
// for server.uwsgi_listen connections; no Python, no allocation in the steady state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aiowsgi::worker {

// The packet (https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html), little-endian:
//   uint8 modifier1 | uint16 datasize | uint8 modifier2 | datasize bytes of vars
//   each var: uint16 key_size | key | uint16 val_size | val
// Only modifier1 0 (a WSGI request with its vars) is served; nginx sends that unless
// uwsgi_modifier1 says otherwise.
class UwsgiParser {
 public:
  struct Limits {
    size_t max_header_bytes = 65536;  // datasize (the vars block) above this: 431
    uint64_t max_body_bytes = 0;      // CONTENT_LENGTH above this: 413; 0 = unlimited
    size_t max_header_fields = 100;   // HTTP_* vars (the request's header fields); 0 = unlimited
  };
  enum class Result { kIncomplete, kHeadComplete, kError };

  static constexpr size_t kHeaderSize = 4;

  explicit UwsgiParser(Limits limits);
  UwsgiParser(const UwsgiParser&) = delete;
  UwsgiParser& operator=(const UwsgiParser&) = delete;

  // Makes the parser ready for the next packet; keeps the buffers' capacity.
  void reset();

  // Feeds bytes of the packet. Never consumes past the end of the vars block, so the body
  // (and anything after it) stays in the caller's buffer.
  // kIncomplete: all |len| bytes consumed (*consumed == len), more needed.
  // kHeadComplete: *consumed bytes ended the packet; the accessors below are valid until
  //   reset(). The body is the next content_length().value_or(0) raw bytes.
  // kError: see error_status(); the connection must be closed after the error response.
  // Once a result other than kIncomplete was returned, further calls return it again and
  // consume nothing, until reset().
  Result feed(const char* data, size_t len, size_t* consumed);

  // Valid after kHeadComplete. Variables in packet order; a name sent twice appears twice.
  size_t var_count() const { return vars_.size(); }
  std::string_view var_name(size_t i) const;
  std::string_view var_value(size_t i) const;
  // The value of the first variable called |name|, or nullopt.
  std::optional<std::string_view> find(std::string_view name) const;
  uint8_t modifier2() const { return modifier2_; }
  // From CONTENT_LENGTH: nullopt when the variable is absent or empty (nginx's uwsgi_params
  // sends "CONTENT_LENGTH" = "" for a request without a body).
  std::optional<uint64_t> content_length() const { return content_length_; }

  // After kError:
  //   400 malformed packet: a var running past datasize, an empty or non-token name, NUL, CR
  //       or LF in a value, a CONTENT_LENGTH that is not plain digits (or two that differ),
  //       no REQUEST_METHOD;
  //   413 CONTENT_LENGTH over max_body_bytes;
  //   431 datasize over max_header_bytes (known from the 4-byte header, before the vars), or
  //       more HTTP_* vars than max_header_fields (the peer sends one per header field; the
  //       other CGI variables are a fixed set and max_header_bytes bounds them);
  //   501 modifier1 other than 0: a request for another uWSGI plugin, which this server
  //       does not implement (the packet itself may be well formed, so not 400).
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  struct Var {
    Span name, value;
  };
  enum class State : uint8_t { kHeader, kVars, kDone, kError };

  Result fail(int status, std::string_view reason);
  // Splits and checks the complete vars block in block_.
  Result parse_vars();

  Limits limits_;
  State state_ = State::kHeader;
  uint8_t header_[kHeaderSize] = {};
  size_t header_have_ = 0;
  uint8_t modifier2_ = 0;
  size_t datasize_ = 0;
  std::string block_;  // the vars block as received; names and values are spans into it
  std::vector<Var> vars_;
  std::optional<uint64_t> content_length_;
  int error_status_ = 0;
  std::string_view error_reason_;
};

// Whether a uwsgi var called |name| may become an environ entry: a CGI-style name (letters,
// digits and '_', not starting with a digit). Anything else, in particular the server's own
// "wsgi.*" and "aiowsgi.*" keys (wsgi.input, wsgi.url_scheme, aiowsgi.core), is not the
// peer's to set: the server's entries win and such a var is left out of the environ.
bool is_cgi_var_name(std::string_view name);

}  // namespace aiowsgi::worker
