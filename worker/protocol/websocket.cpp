#include "worker/protocol/websocket.h"

#include <array>
#include <cstring>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker::websocket {

namespace {

// RFC 6455 1.3: the fixed GUID appended to the client's key.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Past this many parsed bytes at the front of the buffer, they are erased (amortised: only
// when they are also more than half of it).
constexpr size_t kCompactAfter = 64 * 1024;

uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

bool is_known_opcode(uint8_t op) {
  return op == 0x0 || op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xA;
}

// RFC 6455 7.4: codes a peer may put in a close frame. 1004-1006 and 1015 are reserved for
// local use; 1016-2999 are reserved for future RFCs; 3000-4999 belong to libraries and apps.
bool is_valid_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

// XORs |len| bytes with the 4-byte masking key (RFC 6455 5.3), appending the result.
void unmask_append(const uint8_t* data, size_t len, const uint8_t* key, std::string* out) {
  size_t base = out->size();
  out->resize(base + len);
  char* dst = out->data() + base;
  for (size_t i = 0; i < len; ++i) dst[i] = static_cast<char>(data[i] ^ key[i & 3]);
}

}  // namespace

std::string sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(data);
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>((bits >> (i * 8)) & 0xff));
  for (size_t chunk = 0; chunk < msg.size(); chunk += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(msg.data() + chunk + i * 4);
      w[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::string out;
  for (uint32_t v : h) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
  }
  return out;
}

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<uint8_t>(data[i])} << 16) |
                 (uint32_t{static_cast<uint8_t>(data[i + 1])} << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(data[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(data[i + 1])} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string_view handshake_error(const HandshakeRequest& r) {
  if (r.method != "GET") return "the request method is not GET";
  if (!r.http11) return "the request is not HTTP/1.1";
  // The same list splitting and OWS trimming as the request parser's Connection handling.
  if (!char_class::list_has_token(r.upgrade, "websocket")) {
    return "the request has no Upgrade: websocket";
  }
  if (!char_class::list_has_token(r.connection, "upgrade")) {
    return "the request has no Connection: upgrade";
  }
  if (r.version != "13") return "Sec-WebSocket-Version is not 13";
  // base64 of 16 bytes: 22 alphabet characters, then "==" (RFC 6455 4.1, RFC 4648 4).
  const std::string_view k = r.key;
  bool key_ok = k.size() == 24 && k.substr(22) == "==";
  for (size_t i = 0; key_ok && i < 22; ++i) {
    const char c = k[i];
    key_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '+' || c == '/';
  }
  if (!key_ok) return "Sec-WebSocket-Key is not the base64 of 16 bytes";
  return {};
}

std::string accept_key(std::string_view client_key) {
  std::string s(client_key);
  s.append(kGuid);
  return base64(sha1(s));
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void encode_header(Opcode op, uint64_t payload_len, std::string* out) {
  out->push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));  // FIN, no RSV, no mask
  if (payload_len < 126) {
    out->push_back(static_cast<char>(payload_len));
  } else if (payload_len <= 0xFFFF) {
    out->push_back(static_cast<char>(126));
    out->push_back(static_cast<char>((payload_len >> 8) & 0xff));
    out->push_back(static_cast<char>(payload_len & 0xff));
  } else {
    out->push_back(static_cast<char>(127));
    for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<char>((payload_len >> s) & 0xff));
  }
}

void encode_frame(Opcode op, std::string_view payload, std::string* out) {
  encode_header(op, payload.size(), out);
  out->append(payload);
}

void encode_close(uint16_t code, std::string_view reason, std::string* out) {
  std::string body;
  body.push_back(static_cast<char>(code >> 8));
  body.push_back(static_cast<char>(code & 0xff));
  // Control frames carry at most 125 bytes (RFC 6455 5.5); our reasons are short ASCII.
  body.append(reason.substr(0, 123));
  encode_frame(Opcode::kClose, body, out);
}

FrameReader::Event FrameReader::fail(uint16_t code, std::string_view reason) {
  error_code_ = code;
  error_reason_ = reason;
  final_ = Event::kError;
  buf_.clear();
  pos_ = 0;
  message_.clear();
  payload_.clear();
  return final_;
}

void FrameReader::release_idle() {
  if (buffered() != 0 || in_message_ || final_ != Event::kNeedMore) return;
  std::string().swap(buf_);
  pos_ = 0;
  std::string().swap(message_);
  std::string().swap(payload_);
}

FrameReader::Event FrameReader::next() {
  if (final_ != Event::kNeedMore) return final_;
  for (;;) {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > kCompactAfter && pos_ * 2 > buf_.size()) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    size_t avail = buf_.size() - pos_;
    const auto* p = reinterpret_cast<const uint8_t*>(buf_.data() + pos_);
    if (avail < 2) return Event::kNeedMore;
    // RFC 6455 5.2: FIN, RSV1-3, opcode | MASK, payload length.
    bool fin = (p[0] & 0x80) != 0;
    uint8_t op = p[0] & 0x0F;
    bool control = (op & 0x08) != 0;
    uint64_t len = p[1] & 0x7F;
    // No extension is negotiated, so every RSV bit must be 0 (5.2).
    if ((p[0] & 0x70) != 0) return fail(kCloseProtocolError, "reserved bits set");
    if (!is_known_opcode(op)) return fail(kCloseProtocolError, "unknown opcode");
    // 5.1: a server must close on a frame the client did not mask.
    if ((p[1] & 0x80) == 0) return fail(kCloseProtocolError, "client frame not masked");
    // 5.5: control frames are never fragmented and carry at most 125 bytes.
    if (control && !fin) return fail(kCloseProtocolError, "fragmented control frame");
    if (control && len > 125) return fail(kCloseProtocolError, "control frame over 125 bytes");
    size_t header = 2;
    if (len == 126) {
      if (avail < 4) return Event::kNeedMore;
      len = (uint64_t{p[2]} << 8) | p[3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10) return Event::kNeedMore;
      len = 0;
      for (int i = 2; i < 10; ++i) len = (len << 8) | p[i];
      // 5.2: the most significant bit of a 64-bit length must be 0.
      if ((len >> 63) != 0) return fail(kCloseProtocolError, "invalid payload length");
      header = 10;
    }
    if (!control) {
      // 5.4: a fragmented message is a start frame, continuations, and a FIN continuation.
      if (op == 0x0 && !in_message_) return fail(kCloseProtocolError, "continuation without start");
      if (op != 0x0 && in_message_) {
        return fail(kCloseProtocolError, "new message before the fragmented one ended");
      }
      size_t have = in_message_ ? message_.size() : 0;
      if (len > max_message_ - have) return fail(kCloseTooBig, "message too big");
    }
    header += 4;  // masking key
    if (avail < header || avail - header < len) return Event::kNeedMore;
    const uint8_t* key = p + header - 4;
    const uint8_t* data = p + header;
    size_t n = static_cast<size_t>(len);
    pos_ += header + n;
    if (control) {
      payload_.clear();
      unmask_append(data, n, key, &payload_);
      if (op == 0x9) return Event::kPing;
      if (op == 0xA) return Event::kPong;
      // Close (5.5.1): empty, or a 2-byte code and a UTF-8 reason.
      if (n == 0) {
        close_code_ = 1005;  // "no status received" (7.4.1)
      } else if (n == 1) {
        return fail(kCloseProtocolError, "close frame of 1 byte");
      } else {
        uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(payload_[0]) << 8) |
                                              static_cast<uint8_t>(payload_[1]));
        if (!is_valid_close_code(code)) return fail(kCloseProtocolError, "invalid close code");
        if (!valid_utf8(std::string_view(payload_).substr(2))) {
          return fail(kCloseInvalidData, "close reason is not UTF-8");
        }
        close_code_ = code;
        payload_.erase(0, 2);
      }
      final_ = Event::kClose;
      return final_;
    }
    if (op != 0x0) {
      message_opcode_ = static_cast<Opcode>(op);
      message_.clear();
      in_message_ = true;
    }
    unmask_append(data, n, key, &message_);
    if (!fin) continue;
    in_message_ = false;
    if (message_opcode_ == Opcode::kText && !valid_utf8(message_)) {
      return fail(kCloseInvalidData, "text message is not UTF-8");
    }
    payload_.swap(message_);
    message_.clear();
    return Event::kMessage;
  }
}

}  // namespace aiowsgi::worker::websocket
