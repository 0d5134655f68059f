// WebSocket framing (RFC 6455) for the server side of an upgraded connection: the handshake's
// accept key, an incremental reader for client frames and the encoder for server frames.
// Used in workers by the `uwsgi` compatibility module (websocket_*); pure C++, no Python, no
// GIL needed. Every malformed input ends in an error with the close code to send, never UB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aiowsgi::worker::websocket {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes the server sends (RFC 6455 7.4.1).
constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseInvalidData = 1007;  // text that is not UTF-8
constexpr uint16_t kCloseTooBig = 1009;       // message above the size limit
// IANA's registry beside RFC 6455: the worker leaves, the service goes on (reconnect now).
constexpr uint16_t kCloseServiceRestart = 1012;

// Largest message (all fragments together) a client may send: 1 MiB, uWSGI's default
// (websockets-max-size). Bigger ones close the connection with 1009 as soon as a frame header
// announces them, before their payload is held.
constexpr size_t kMaxMessage = 1u << 20;

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + RFC GUID)).
std::string accept_key(std::string_view client_key);
// What a client's opening handshake must carry (RFC 6455 4.2.1), as the server received it.
struct HandshakeRequest {
  std::string_view method;                             // "GET"
  bool http11 = false;                                 // HTTP/1.1 or later
  std::string_view upgrade, connection, version, key;  // field values; "" when absent
};
// Why |r| is not a valid opening handshake, or "" when it is: a GET over HTTP/1.1 with
// "websocket" in Upgrade, "upgrade" in Connection (both token lists, any case),
// Sec-WebSocket-Version 13, and a Sec-WebSocket-Key that is the base64 of 16 bytes.
std::string_view handshake_error(const HandshakeRequest& r);

// SHA-1 (FIPS 180-4) and base64 (RFC 4648), exposed for the tests.
std::string sha1(std::string_view data);  // 20 raw bytes
std::string base64(std::string_view data);

// True if |s| is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s);

// Appends one unmasked, unfragmented server frame (FIN set) to *out.
void encode_frame(Opcode op, std::string_view payload, std::string* out);
// Appends only the header of such a frame (the payload is sent separately, without a copy).
void encode_header(Opcode op, uint64_t payload_len, std::string* out);
// Appends a close frame with |code| and a short |reason| (cut to fit 125 bytes).
void encode_close(uint16_t code, std::string_view reason, std::string* out);

// Reads the frames a client sends, from bytes appended as they arrive. Reassembles fragmented
// messages and hands control frames out as they come (they may arrive between fragments).
class FrameReader {
 public:
  enum class Event {
    kNeedMore,  // no complete message or control frame buffered yet
    kMessage,   // a complete text or binary message: payload(), message_opcode()
    kPing,      // payload() is the ping's application data (answer with a pong)
    kPong,
    kClose,  // the client's close frame: close_code() (1005 when it sent none)
    kError,  // protocol violation: close with error_code(); the reader stays in error
  };

  explicit FrameReader(size_t max_message = kMaxMessage) : max_message_(max_message) {}

  // Bytes received from the client, in order.
  void append(const char* data, size_t len) { buf_.append(data, len); }
  // Parses what is buffered and returns the next event. payload() stays valid until the next
  // call. After kClose or kError every call returns the same event again.
  Event next();

  const std::string& payload() const { return payload_; }
  Opcode message_opcode() const { return message_opcode_; }
  uint16_t close_code() const { return close_code_; }
  uint16_t error_code() const { return error_code_; }
  std::string_view error_reason() const { return error_reason_; }
  size_t buffered() const { return buf_.size() - pos_; }
  // Gives the buffers' memory back when nothing is buffered and no message is half
  // reassembled (else does nothing): before a wait that may last long. payload() is empty
  // after it.
  void release_idle();

 private:
  Event fail(uint16_t code, std::string_view reason);

  size_t max_message_;
  std::string buf_;  // received bytes, unparsed from pos_
  size_t pos_ = 0;
  std::string message_;  // fragments of the message being reassembled
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::kText;
  std::string payload_;
  uint16_t close_code_ = 0;
  uint16_t error_code_ = 0;
  std::string_view error_reason_;
  Event final_ = Event::kNeedMore;  // kClose/kError once reached
};

}  // namespace aiowsgi::worker::websocket
