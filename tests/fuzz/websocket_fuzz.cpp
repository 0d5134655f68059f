// libFuzzer target: websocket::FrameReader over untrusted client frames, and the UTF-8
// validator and frame encoder it relies on. Built only by the fuzz configuration
// (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run.
// Input: byte 0 picks the read size, byte 1 the message limit, the rest is what the client sent.
// Invariants checked beyond "no crash":
//   - appending the bytes at once or in small pieces gives the same events, whether or not
//     release_idle() runs between the pieces;
//   - a message is never over the limit, a text message (and a close reason) is valid UTF-8,
//     an error carries a protocol close code, kClose/kError are final;
//   - the events, sent again as masked client frames, read back as the same events;
//   - valid_utf8 agrees with a straightforward reference decoder (RFC 3629);
//   - encode_frame's output carries the payload and a length that matches it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/websocket.h"

namespace {

namespace ws = aiowsgi::worker::websocket;
using Event = ws::FrameReader::Event;

struct Seen {
  Event event;
  ws::Opcode opcode;
  std::string payload;
  uint16_t code;
  bool operator==(const Seen&) const = default;
};

constexpr size_t kMaxEvents = 64;

std::vector<Seen> read_all(std::string_view in, size_t piece, size_t max_message) {
  ws::FrameReader r(max_message);
  std::vector<Seen> out;
  size_t pos = 0;
  size_t appended = 0;
  for (;;) {
    const Event e = r.next();
    FUZZ_CHECK(r.buffered() <= appended);
    if (e == Event::kNeedMore) {
      if (pos >= in.size()) break;
      // The server gives an idle reader's buffers back before it waits (odd piece sizes do it
      // here): the events must not change.
      if (piece % 2 == 1) r.release_idle();
      const std::string_view part = in.substr(pos, piece);
      r.append(part.data(), part.size());
      appended += part.size();
      pos += part.size();
      continue;
    }
    Seen s{e, ws::Opcode::kText, {}, 0};
    if (e == Event::kMessage) {
      s.opcode = r.message_opcode();
      s.payload = r.payload();
      FUZZ_CHECK(s.payload.size() <= max_message);
      FUZZ_CHECK(s.opcode == ws::Opcode::kText || s.opcode == ws::Opcode::kBinary);
      if (s.opcode == ws::Opcode::kText) FUZZ_CHECK(ws::valid_utf8(s.payload));
    } else if (e == Event::kPing || e == Event::kPong) {
      s.payload = r.payload();
      FUZZ_CHECK(s.payload.size() <= 125);
    } else if (e == Event::kClose) {
      s.code = r.close_code();
      s.payload = r.payload();
      FUZZ_CHECK(s.code == 1005 || (s.code >= 1000 && s.code < 5000));
      FUZZ_CHECK(ws::valid_utf8(s.payload));
    } else {
      FUZZ_CHECK(e == Event::kError);
      s.code = r.error_code();
      FUZZ_CHECK(s.code == ws::kCloseProtocolError || s.code == ws::kCloseInvalidData ||
                 s.code == ws::kCloseTooBig);
      FUZZ_CHECK(!r.error_reason().empty());
    }
    out.push_back(std::move(s));
    if (e == Event::kClose || e == Event::kError) {
      FUZZ_CHECK(r.next() == e);  // final
      break;
    }
    if (out.size() == kMaxEvents) break;
  }
  return out;
}

// A masked client frame (RFC 6455 5.2), FIN set.
void client_frame(ws::Opcode op, std::string_view payload, uint8_t key_seed, std::string* out) {
  out->push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  const size_t n = payload.size();
  if (n < 126) {
    out->push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    out->push_back(static_cast<char>(0x80 | 126));
    out->push_back(static_cast<char>(n >> 8));
    out->push_back(static_cast<char>(n & 0xff));
  } else {
    out->push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((uint64_t{n} >> (8 * i)) & 0xff));
  }
  const uint8_t key[4] = {key_seed, static_cast<uint8_t>(key_seed * 7 + 1), 0x5a, 0xc3};
  for (uint8_t k : key) out->push_back(static_cast<char>(k));
  for (size_t i = 0; i < n; ++i) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ key[i % 4]));
  }
}

// RFC 3629 section 4, written the long way.
bool reference_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if ((b0 & 0xe0) == 0xc0) {
      n = 1;
      cp = b0 & 0x1f;
    } else if ((b0 & 0xf0) == 0xe0) {
      n = 2;
      cp = b0 & 0x0f;
    } else if ((b0 & 0xf8) == 0xf0) {
      n = 3;
      cp = b0 & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t piece = aiowsgi::fuzz::piece_size(data[0]);
  const size_t max_message = (data[1] & 1) ? 64 : ws::kMaxMessage;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  FUZZ_CHECK(ws::valid_utf8(in) == reference_utf8(in));

  const std::vector<Seen> whole = read_all(in, in.size() + 1, max_message);
  const std::vector<Seen> split = read_all(in, piece, max_message);
  FUZZ_CHECK(whole == split);

  // Round trip: every event but an error, as fresh unfragmented masked frames.
  std::string again;
  std::vector<Seen> expect;
  for (const Seen& s : whole) {
    if (s.event == Event::kError) break;
    if (s.event == Event::kMessage) {
      client_frame(s.opcode, s.payload, data[0], &again);
    } else if (s.event == Event::kPing || s.event == Event::kPong) {
      client_frame(s.event == Event::kPing ? ws::Opcode::kPing : ws::Opcode::kPong, s.payload,
                   data[0], &again);
    } else {
      std::string body;
      if (s.code != 1005) {
        body.push_back(static_cast<char>(s.code >> 8));
        body.push_back(static_cast<char>(s.code & 0xff));
        body += s.payload;
      }
      client_frame(ws::Opcode::kClose, body, data[0], &again);
    }
    expect.push_back(s);
  }
  FUZZ_CHECK(read_all(again, again.size() + 1, max_message) == expect);

  // The server's own frames: header, then the payload unchanged.
  std::string frame;
  const std::string_view payload = in.substr(0, 300);
  ws::encode_frame(ws::Opcode::kBinary, payload, &frame);
  FUZZ_CHECK(frame.size() >= payload.size() + 2);
  const size_t header = frame.size() - payload.size();
  FUZZ_CHECK(header == (payload.size() < 126 ? 2u : 4u));
  FUZZ_CHECK(static_cast<uint8_t>(frame[0]) == 0x82);
  FUZZ_CHECK((static_cast<uint8_t>(frame[1]) & 0x80) == 0);  // servers never mask
  FUZZ_CHECK(std::string_view(frame).substr(header) == payload);
  FUZZ_CHECK(ws::accept_key(in).size() == 28);
  return 0;
}
