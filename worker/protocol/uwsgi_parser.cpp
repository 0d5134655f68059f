#include "worker/protocol/uwsgi_parser.h"

#include <cstring>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {
namespace {

uint16_t read_u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Values become environ strings and, through HTTP_* vars, may be echoed into response
// headers by the app: the bytes HTTP forbids in a field value (RFC 9110 5.5) are refused
// here too, so both listeners treat a smuggled CR/LF/NUL the same way.
bool value_ok(std::string_view v) {
  for (char ch : v) {
    if (ch == '\0' || ch == '\r' || ch == '\n') return false;
  }
  return true;
}

}  // namespace

UwsgiParser::UwsgiParser(Limits limits) : limits_(limits) { vars_.reserve(32); }

void UwsgiParser::reset() {
  state_ = State::kHeader;
  header_have_ = 0;
  modifier2_ = 0;
  datasize_ = 0;
  block_.clear();
  vars_.clear();
  content_length_.reset();
  error_status_ = 0;
  error_reason_ = {};
}

UwsgiParser::Result UwsgiParser::fail(int status, std::string_view reason) {
  state_ = State::kError;
  error_status_ = status;
  error_reason_ = reason;
  return Result::kError;
}

UwsgiParser::Result UwsgiParser::feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (state_ == State::kDone) return Result::kHeadComplete;
  if (state_ == State::kError) return Result::kError;
  size_t pos = 0;
  if (state_ == State::kHeader) {
    while (header_have_ < kHeaderSize && pos < len) {
      header_[header_have_++] = static_cast<uint8_t>(data[pos++]);
    }
    *consumed = pos;
    if (header_have_ < kHeaderSize) return Result::kIncomplete;
    // modifier1 first: with another plugin's packet the rest of the header means something
    // else, so neither its size nor its vars are looked at.
    if (header_[0] != 0) return fail(501, "uwsgi modifier1 other than 0");
    datasize_ = read_u16le(header_ + 1);
    modifier2_ = header_[3];
    if (datasize_ > limits_.max_header_bytes) {
      return fail(431, "uwsgi vars block over max_header_bytes");
    }
    state_ = State::kVars;
  }
  // kVars: collect exactly datasize_ bytes; the body that follows is not ours to consume.
  size_t want = datasize_ - block_.size();
  size_t take = len - pos < want ? len - pos : want;
  block_.append(data + pos, take);
  pos += take;
  *consumed = pos;
  if (block_.size() < datasize_) return Result::kIncomplete;
  return parse_vars();
}

UwsgiParser::Result UwsgiParser::parse_vars() {
  const auto* p = reinterpret_cast<const uint8_t*>(block_.data());
  const size_t n = block_.size();
  size_t pos = 0;
  std::optional<std::string_view> content_length_text;
  bool have_method = false;
  size_t header_fields = 0;
  while (pos < n) {
    // Each length is checked against what is left before anything is read past it.
    if (n - pos < 2) return fail(400, "uwsgi var name length cut short");
    size_t key_len = read_u16le(p + pos);
    pos += 2;
    if (key_len == 0) return fail(400, "uwsgi var with an empty name");
    if (n - pos < key_len) return fail(400, "uwsgi var name runs past the packet");
    Var v;
    v.name = {static_cast<uint32_t>(pos), static_cast<uint32_t>(key_len)};
    pos += key_len;
    if (n - pos < 2) return fail(400, "uwsgi var value length cut short");
    size_t val_len = read_u16le(p + pos);
    pos += 2;
    if (n - pos < val_len) return fail(400, "uwsgi var value runs past the packet");
    v.value = {static_cast<uint32_t>(pos), static_cast<uint32_t>(val_len)};
    pos += val_len;

    std::string_view name(block_.data() + v.name.off, v.name.len);
    std::string_view value(block_.data() + v.value.off, v.value.len);
    for (char ch : name) {
      if (!char_class::is(char_class::kToken, ch)) {
        return fail(400, "uwsgi var name with a byte outside the token set");
      }
    }
    if (!value_ok(value)) return fail(400, "uwsgi var value with NUL, CR or LF");
    if (name == "CONTENT_LENGTH") {
      // Two differing lengths are the uwsgi form of the HTTP smuggling case (RFC 9112 6.3).
      if (content_length_text && *content_length_text != value) {
        return fail(400, "conflicting CONTENT_LENGTH vars");
      }
      content_length_text = value;
    } else if (name == "REQUEST_METHOD") {
      if (value.empty()) return fail(400, "empty REQUEST_METHOD");
      have_method = true;
    } else if (name.starts_with("HTTP_") && ++header_fields > limits_.max_header_fields &&
               limits_.max_header_fields != 0) {
      return fail(431, "more HTTP_ vars than max_header_fields");
    }
    vars_.push_back(v);
  }
  if (!have_method) return fail(400, "uwsgi packet without REQUEST_METHOD");

  if (content_length_text && !content_length_text->empty()) {
    // Strict digits, as for HTTP: no sign, no spaces, no hex. 19 digits always fit.
    if (content_length_text->size() > 19) return fail(400, "CONTENT_LENGTH too large");
    uint64_t v = 0;
    for (char ch : *content_length_text) {
      if (ch < '0' || ch > '9') return fail(400, "CONTENT_LENGTH is not a number");
      v = v * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (limits_.max_body_bytes != 0 && v > limits_.max_body_bytes) {
      return fail(413, "CONTENT_LENGTH over max_body_bytes");
    }
    content_length_ = v;
  }
  state_ = State::kDone;
  return Result::kHeadComplete;
}

std::string_view UwsgiParser::var_name(size_t i) const {
  const Span& s = vars_[i].name;
  return {block_.data() + s.off, s.len};
}

std::string_view UwsgiParser::var_value(size_t i) const {
  const Span& s = vars_[i].value;
  return {block_.data() + s.off, s.len};
}

bool is_cgi_var_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string_view> UwsgiParser::find(std::string_view name) const {
  for (size_t i = 0; i < vars_.size(); ++i) {
    if (var_name(i) == name) return var_value(i);
  }
  return std::nullopt;
}

}  // namespace aiowsgi::worker
