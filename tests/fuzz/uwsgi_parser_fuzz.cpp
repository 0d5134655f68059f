// libFuzzer target: UwsgiParser over untrusted packet bytes (what nginx's uwsgi_pass sends,
// or anything a client on a uwsgi_listen socket sends). Built only by the fuzz configuration
// (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run.
// Input: byte 0 picks the read size, byte 1 the limits, the rest is the stream.
// Invariants checked beyond "no crash":
//   - a call never consumes more than it was given, kIncomplete consumes all of it, and a
//     finished parser consumes nothing more;
//   - one piece or small pieces give the same result, variables and consumed count;
//   - a parsed packet is exactly 4 + datasize bytes, its names are non-empty tokens, its
//     values have no NUL/CR/LF, REQUEST_METHOD is there, content_length() agrees with the
//     CONTENT_LENGTH var and max_body_bytes;
//   - the variables, encoded again, parse to the same variables.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/uwsgi_parser.h"

namespace {

using aiowsgi::fuzz::Piece;
using aiowsgi::worker::UwsgiParser;
using Result = UwsgiParser::Result;

struct Parsed {
  Result result = Result::kIncomplete;
  int error_status = 0;
  size_t consumed = 0;
  std::vector<std::pair<std::string, std::string>> vars;
  std::optional<uint64_t> content_length;
  uint8_t modifier2 = 0;
  bool operator==(const Parsed&) const = default;
};

Parsed parse(std::string_view in, size_t piece, UwsgiParser::Limits limits) {
  UwsgiParser p(limits);
  Parsed out;
  size_t pos = 0;
  while (pos < in.size()) {
    const Piece buf(in.substr(pos, piece));
    size_t c = 0;
    out.result = p.feed(buf.data(), buf.size(), &c);
    FUZZ_CHECK(c <= buf.size());
    pos += c;
    if (out.result == Result::kIncomplete) {
      FUZZ_CHECK(c == buf.size());
      continue;
    }
    // Final: further calls repeat the verdict and consume nothing.
    size_t c2 = 1;
    FUZZ_CHECK(p.feed(buf.data(), buf.size(), &c2) == out.result && c2 == 0);
    break;
  }
  out.consumed = pos;
  if (out.result == Result::kError) {
    out.error_status = p.error_status();
    FUZZ_CHECK(!p.error_reason().empty());
  } else if (out.result == Result::kHeadComplete) {
    for (size_t i = 0; i < p.var_count(); ++i) out.vars.emplace_back(p.var_name(i), p.var_value(i));
    out.content_length = p.content_length();
    out.modifier2 = p.modifier2();
  }
  return out;
}

void put_u16(std::string* s, size_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>(v >> 8));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t piece = aiowsgi::fuzz::piece_size(data[0]);
  UwsgiParser::Limits limits;
  if (data[1] & 1) limits.max_header_bytes = 128;
  if (data[1] & 2) limits.max_body_bytes = 100;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  const Parsed whole = parse(in, in.size() + 1, limits);
  const Parsed split = parse(in, piece, limits);
  FUZZ_CHECK(whole == split);
  FUZZ_CHECK(whole.consumed <= in.size());

  if (whole.result == Result::kError) {
    const int s = whole.error_status;
    FUZZ_CHECK(s == 400 || s == 413 || s == 431 || s == 501);
    if (s == 501) FUZZ_CHECK(in[0] != 0);
    return 0;
  }
  if (whole.result != Result::kHeadComplete) {
    FUZZ_CHECK(whole.consumed == in.size());
    return 0;
  }
  const auto* u = reinterpret_cast<const uint8_t*>(in.data());
  const size_t datasize = u[1] | (static_cast<size_t>(u[2]) << 8);
  FUZZ_CHECK(u[0] == 0);
  FUZZ_CHECK(whole.consumed == UwsgiParser::kHeaderSize + datasize);
  FUZZ_CHECK(datasize <= limits.max_header_bytes);
  FUZZ_CHECK(whole.modifier2 == u[3]);
  bool method = false;
  std::optional<std::string> cl_var;
  for (const auto& [name, value] : whole.vars) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(value.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos);
    if (name == "REQUEST_METHOD") method = method || !value.empty();
    if (name == "CONTENT_LENGTH" && !cl_var) cl_var = value;
  }
  FUZZ_CHECK(method);
  if (!cl_var || cl_var->empty()) {
    FUZZ_CHECK(!whole.content_length);
  } else {
    FUZZ_CHECK(whole.content_length &&
               std::to_string(*whole.content_length).size() <= cl_var->size());
    FUZZ_CHECK(std::stoull(*cl_var) == *whole.content_length);
    if (limits.max_body_bytes != 0) FUZZ_CHECK(*whole.content_length <= limits.max_body_bytes);
  }

  // Round trip.
  std::string block;
  for (const auto& [name, value] : whole.vars) {
    put_u16(&block, name.size());
    block += name;
    put_u16(&block, value.size());
    block += value;
  }
  FUZZ_CHECK(block.size() == datasize);
  std::string again;
  again.push_back('\0');
  put_u16(&again, block.size());
  again.push_back(static_cast<char>(whole.modifier2));
  again += block;
  const Parsed back = parse(again, again.size(), limits);
  FUZZ_CHECK(back == whole);
  return 0;
}
