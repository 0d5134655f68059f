// libFuzzer target: the response side. What an app hands to start_response (status, header
// fields) and the body it returns, through ResponseHead and the chunk framing, to the bytes a
// client would read. Built only by the fuzz configuration (-DAIOWSGI_FUZZ=ON, clang); run by
// tests/fuzz/run.
// Input: byte 0 holds flags (HEAD, HTTP/1.1, keep-alive, known length, write size); then
// length-prefixed pieces (one length byte each): the status, then name, value, name, value...;
// a length byte of 0xff ends the fields and the rest of the input is the body.
// Invariants checked beyond "no crash":
//   - a field is refused exactly when an independent reference check refuses it, with the
//     same reason (status, 1xx, name, value, Content-Length syntax, duplicate, TE);
//   - the head never refers to the caller's memory (each piece is freed before the head is
//     built, so ASan catches a use after free);
//   - on the wire: CRLF only as line ends, every field line is "token: value", the head ends
//     with CRLFCRLF, the status code is 200..599, at most one Content-Length, never both
//     Content-Length and chunked, chunked only for HTTP/1.1, one Connection field at most and
//     "close" whenever the plan closes;
//   - the body on the wire agrees with the framing: exactly the declared length (a prefix
//     of the app's body), the app's body chunk by chunk, or everything to the close; nothing
//     for HEAD, 204 and 304.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/response_head.h"

namespace {

using aiowsgi::fuzz::Piece;
using aiowsgi::worker::append_chunk_size;
using aiowsgi::worker::append_head;
using aiowsgi::worker::Framing;
using aiowsgi::worker::HeadError;
using aiowsgi::worker::HeadOptions;
using aiowsgi::worker::HeadPlan;
using aiowsgi::worker::ResponseHead;

constexpr std::string_view kDate = "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
constexpr uint64_t kMaxLength = 9223372036854775807ULL;

// --- Reference checks, written apart from the unit under test --------------------------------

bool ref_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 32 || c >= 127 || std::strchr("()<>@,;:\\\"/[]?={}", c) != nullptr) return false;
  }
  return true;
}

bool ref_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string ref_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return r;
}

HeadError ref_status(std::string_view s) {
  if (s.size() < 4 || s[3] != ' ') return HeadError::kStatus;
  for (int i = 0; i < 3; ++i)
    if (s[i] < '0' || s[i] > '9') return HeadError::kStatus;
  int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (code < 100 || code > 599 || !ref_value(s)) return HeadError::kStatus;
  return code < 200 ? HeadError::kInformational : HeadError::kOk;
}

bool ref_content_length(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  unsigned __int128 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > kMaxLength) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

// Strips leading zeros so that "0005" (19 chars max above) does not refuse a valid length.
std::string_view strip_zeros(std::string_view s) {
  while (s.size() > 1 && s[0] == '0') s.remove_prefix(1);
  return s;
}

struct Input {
  bool head = false, http11 = false, keep_alive = false, known = false;
  size_t write_size = 1;
  std::string_view status;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  std::string_view body;
};

Input split(const uint8_t* data, size_t size) {
  Input in;
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (s.empty()) return in;
  unsigned char f = static_cast<unsigned char>(s[0]);
  s.remove_prefix(1);
  in.head = f & 1;
  in.http11 = f & 2;
  in.keep_alive = f & 4;
  in.known = f & 8;
  in.write_size = 1 + (f >> 4) * 97u;
  auto piece = [&s](bool* end) {
    if (s.empty()) {
      *end = true;
      return std::string_view();
    }
    unsigned char n = static_cast<unsigned char>(s[0]);
    s.remove_prefix(1);
    if (n == 0xff) {
      *end = true;
      return std::string_view();
    }
    std::string_view p = s.substr(0, n);
    s.remove_prefix(p.size());
    return p;
  };
  bool end = false;
  in.status = piece(&end);
  while (!end) {
    std::string_view name = piece(&end);
    if (end) break;
    std::string_view value = piece(&end);
    in.fields.emplace_back(name, value);
  }
  in.body = s;
  return in;
}

// --- Reading the wire back ------------------------------------------------------------------

struct Wire {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> fields;  // lower-case names
  std::string_view rest;                                    // after the head

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields) n += f.first == name;
    return n;
  }
  std::string_view get(std::string_view name) const {
    for (const auto& f : fields)
      if (f.first == name) return f.second;
    return {};
  }
};

Wire read_head(std::string_view wire) {
  Wire w;
  size_t end = wire.find("\r\n\r\n");
  FUZZ_CHECK(end != std::string_view::npos);  // the head ends with CRLFCRLF
  std::string_view head = wire.substr(0, end + 2);
  w.rest = wire.substr(end + 4);
  // CR and LF appear only together, as line ends.
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r') FUZZ_CHECK(i + 1 < head.size() && head[i + 1] == '\n');
    if (head[i] == '\n') FUZZ_CHECK(i > 0 && head[i - 1] == '\r');
    FUZZ_CHECK(head[i] != '\0');
  }
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  FUZZ_CHECK(line.size() >= 13 && line.substr(0, 9) == "HTTP/1.1 " && line[12] == ' ');
  for (size_t i = 9; i < 12; ++i) FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
  w.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  FUZZ_CHECK(w.status >= 200 && w.status <= 599);
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    line = head.substr(pos, e - pos);
    pos = e + 2;
    size_t colon = line.find(':');
    FUZZ_CHECK(colon != std::string_view::npos);
    FUZZ_CHECK(ref_token(line.substr(0, colon)));
    FUZZ_CHECK(line.substr(colon, 2) == ": ");
    w.fields.emplace_back(ref_lower(line.substr(0, colon)), std::string(line.substr(colon + 2)));
  }
  return w;
}

std::string decode_chunked(std::string_view s) {
  std::string body;
  for (;;) {
    size_t eol = s.find("\r\n");
    FUZZ_CHECK(eol != std::string_view::npos && eol > 0 && eol <= 16);
    uint64_t n = 0;
    for (char c : s.substr(0, eol)) {
      FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
      n = n * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    s.remove_prefix(eol + 2);
    if (n == 0) {
      FUZZ_CHECK(s == "\r\n");  // no trailers, nothing after the last chunk
      return body;
    }
    FUZZ_CHECK(s.size() >= n + 2 && s.substr(n, 2) == "\r\n");
    body.append(s.substr(0, n));
    s.remove_prefix(n + 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Input in = split(data, size);

  // Each piece lives in its own heap block, freed before the head is built.
  std::vector<std::unique_ptr<Piece>> pieces;
  auto copy = [&pieces](std::string_view s) {
    pieces.push_back(std::make_unique<Piece>(s));
    return std::string_view(pieces.back()->data(), pieces.back()->size());
  };

  ResponseHead h;
  HeadError expected = ref_status(in.status);
  HeadError got = h.set_status(copy(in.status));
  FUZZ_CHECK(got == expected);
  if (got != HeadError::kOk) return 0;
  bool seen_cl = false;
  uint64_t cl = 0;
  bool close = false;
  size_t copied = 0;  // fields the head carries as the app wrote them
  bool app_date = false;
  for (const auto& [name, value] : in.fields) {
    std::string lname = ref_lower(name);
    expected = HeadError::kOk;
    if (!ref_token(name)) {
      expected = HeadError::kHeaderName;
    } else if (!ref_value(value)) {
      expected = HeadError::kHeaderValue;
    } else if (lname == "content-length") {
      if (seen_cl) {
        expected = HeadError::kDuplicateContentLength;
      } else if (!ref_content_length(strip_zeros(value), &cl) ||
                 value.find_first_not_of("0123456789") != std::string_view::npos) {
        expected = HeadError::kContentLength;
      }
      seen_cl = true;
    } else if (lname == "transfer-encoding") {
      expected = HeadError::kTransferEncoding;
    }
    got = h.add_header(copy(name), copy(value));
    FUZZ_CHECK(got == expected);
    if (got != HeadError::kOk) return 0;  // the server answers 500 instead
    if (lname == "connection") {
      std::string v = "," + ref_lower(value) + ",";
      for (char& c : v)
        if (c == '\t') c = ' ';
      for (size_t p = v.find("close"); p != std::string::npos; p = v.find("close", p + 1)) {
        size_t a = v.find_last_not_of(' ', p - 1), b = v.find_first_not_of(' ', p + 5);
        if (v[a] == ',' && v[b] == ',') close = true;
      }
    } else {
      ++copied;
      app_date |= lname == "date";
    }
  }
  FUZZ_CHECK(h.has_content_length() == seen_cl);
  if (seen_cl) FUZZ_CHECK(h.content_length() == cl);
  FUZZ_CHECK(h.wants_close() == close);
  pieces.clear();  // the app's objects are gone; the head must not need them

  HeadOptions o;
  o.http11 = in.http11;
  o.head_request = in.head;
  o.keep_alive = in.keep_alive;
  o.known_length = in.known ? static_cast<int64_t>(in.body.size()) : -1;
  o.date = kDate;
  std::string wire;
  const HeadPlan plan = append_head(h, o, &wire);

  // The body as the worker writes it (core.cpp: write_body, finish_body).
  const bool no_body = in.head || h.no_body_status();
  std::string_view body = in.body;
  if (!no_body) {
    if (plan.framing == Framing::kContentLength && body.size() > plan.content_length)
      body = body.substr(0, plan.content_length);
    for (size_t pos = 0; pos < body.size(); pos += in.write_size) {
      std::string_view part = body.substr(pos, in.write_size);
      if (plan.framing == Framing::kChunked) append_chunk_size(&wire, part.size());
      wire.append(part);
      if (plan.framing == Framing::kChunked) wire.append("\r\n");
    }
  }
  if (plan.framing == Framing::kChunked && !no_body) wire.append("0\r\n\r\n");

  const Wire w = read_head(wire);
  FUZZ_CHECK(w.status == h.status_code());
  const size_t n_cl = w.count("content-length");
  const size_t n_te = w.count("transfer-encoding");
  FUZZ_CHECK(n_cl <= 1 && n_te <= 1 && !(n_cl && n_te));
  FUZZ_CHECK(w.count("connection") <= 1);
  FUZZ_CHECK(w.count("date") == (app_date ? w.count("date") : 1));
  FUZZ_CHECK(w.fields.size() == copied + n_te + w.count("connection") + (app_date ? 0 : 1) +
                                    (n_cl && !seen_cl ? 1 : 0));
  if (!plan.keep_alive) FUZZ_CHECK(w.get("connection") == "close");
  if (plan.keep_alive && o.http11) FUZZ_CHECK(w.count("connection") == 0);
  if (plan.keep_alive && !o.http11) FUZZ_CHECK(w.get("connection") == "keep-alive");
  FUZZ_CHECK(plan.keep_alive == (o.keep_alive && !close && plan.framing != Framing::kClose));

  switch (plan.framing) {
    case Framing::kNone:
      FUZZ_CHECK(n_te == 0);
      FUZZ_CHECK(no_body);
      FUZZ_CHECK(w.rest.empty());
      break;
    case Framing::kContentLength: {
      FUZZ_CHECK(n_cl == 1 && !h.no_body_status());
      uint64_t declared = 0;
      FUZZ_CHECK(ref_content_length(strip_zeros(w.get("content-length")), &declared));
      FUZZ_CHECK(declared == plan.content_length);
      if (!seen_cl) FUZZ_CHECK(declared == in.body.size());
      if (no_body) {
        FUZZ_CHECK(w.rest.empty());
      } else {
        // A shorter body makes the worker close the connection; never more than declared.
        FUZZ_CHECK(w.rest.size() == std::min<uint64_t>(declared, in.body.size()));
        FUZZ_CHECK(in.body.substr(0, w.rest.size()) == w.rest);
      }
      break;
    }
    case Framing::kChunked:
      FUZZ_CHECK(o.http11 && !in.head && !h.no_body_status() && !seen_cl && !in.known);
      FUZZ_CHECK(n_te == 1 && w.get("transfer-encoding") == "chunked");
      FUZZ_CHECK(decode_chunked(w.rest) == in.body);
      break;
    case Framing::kClose:
      FUZZ_CHECK(!o.http11 && !plan.keep_alive && n_cl == 0 && n_te == 0);
      FUZZ_CHECK(w.rest == in.body);
      break;
  }
  if (h.no_body_status()) FUZZ_CHECK(plan.framing == Framing::kNone && n_cl == seen_cl);
  return 0;
}
