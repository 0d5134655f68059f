#include "worker/protocol/websocket.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::worker::websocket {
namespace {

// A client frame: masked with a fixed key, as RFC 6455 5.3 requires of clients.
std::string client_frame(uint8_t first_byte, std::string_view payload, bool masked = true,
                         int force_len_bytes = 0) {
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  uint8_t mask_bit = masked ? 0x80 : 0;
  size_t n = payload.size();
  if (force_len_bytes == 8 || (force_len_bytes == 0 && n > 0xFFFF)) {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>((uint64_t{n} >> s) & 0xff));
  } else if (force_len_bytes == 2 || n >= 126) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(mask_bit | n));
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < n; ++i) {
    f.push_back(masked ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i]);
  }
  return f;
}

std::string close_payload(uint16_t code, std::string_view reason = "") {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  p.append(reason);
  return p;
}

using Event = FrameReader::Event;

TEST(WebSocket, Sha1KnownVectors) {
  EXPECT_EQ(base64(sha1("")), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
  EXPECT_EQ(base64(sha1("abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  // Two-block message (56 bytes: the padding spills into a second block).
  EXPECT_EQ(base64(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "hJg+RBw70m66rkqh+VEp5eVGcPE=");
}

TEST(WebSocket, Base64Padding) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
}

TEST(WebSocket, AcceptKeyFromRfc) {
  // RFC 6455 1.3's example.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, Utf8Validation) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("hello"));
  EXPECT_TRUE(valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(valid_utf8("\xc3"));                                 // truncated
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));                             // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));                         // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));                     // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\x80"));                                 // lone continuation
  EXPECT_FALSE(valid_utf8("\xff"));
}

TEST(WebSocket, EncodesServerFrames) {
  std::string out;
  encode_frame(Opcode::kText, "Hello", &out);
  EXPECT_EQ(out, std::string("\x81\x05Hello", 7));  // RFC 6455 5.7
  out.clear();
  encode_header(Opcode::kBinary, 256, &out);
  EXPECT_EQ(out, std::string("\x82\x7e\x01\x00", 4));
  out.clear();
  encode_header(Opcode::kBinary, 65536, &out);
  EXPECT_EQ(out, std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  out.clear();
  encode_close(1009, "too big", &out);
  EXPECT_EQ(out, std::string("\x88\x09\x03\xf1too big", 11));
  out.clear();
  encode_close(1000, std::string(200, 'x'), &out);
  EXPECT_EQ(out.size(), 2u + 125u);
}

TEST(WebSocket, ReadsMaskedTextMessage) {
  FrameReader r;
  r.append(client_frame(0x81, "Hello").data(), 11);
  ASSERT_EQ(r.next(), Event::kMessage);
  EXPECT_EQ(r.payload(), "Hello");
  EXPECT_EQ(r.message_opcode(), Opcode::kText);
  EXPECT_EQ(r.next(), Event::kNeedMore);
}

// An idle reader gives its memory back; one holding part of a frame or of a fragmented
// message keeps it, and reading goes on as before either way.
TEST(WebSocket, ReleaseIdleKeepsWhatIsBuffered) {
  FrameReader r;
  std::string first = client_frame(0x81, std::string(200, 'a'));
  r.append(first.data(), first.size());
  ASSERT_EQ(r.next(), Event::kMessage);
  ASSERT_EQ(r.next(), Event::kNeedMore);
  r.release_idle();
  EXPECT_TRUE(r.payload().empty());
  std::string second = client_frame(0x81, "second");
  r.append(second.data(), 3);  // part of a frame: kept
  ASSERT_EQ(r.next(), Event::kNeedMore);
  r.release_idle();
  r.append(second.data() + 3, second.size() - 3);
  ASSERT_EQ(r.next(), Event::kMessage);
  EXPECT_EQ(r.payload(), "second");
  std::string part1 = client_frame(0x01, "frag"), part2 = client_frame(0x80, "ment");
  r.append(part1.data(), part1.size());  // a message half reassembled: kept
  ASSERT_EQ(r.next(), Event::kNeedMore);
  r.release_idle();
  r.append(part2.data(), part2.size());
  ASSERT_EQ(r.next(), Event::kMessage);
  EXPECT_EQ(r.payload(), "fragment");
}

TEST(WebSocket, EveryPrefixIsIncomplete) {
  std::string big(70000, 'b');
  for (const std::string& frame :
       {client_frame(0x82, "xyz"), client_frame(0x82, std::string(300, 'a')),
        client_frame(0x82, big)}) {
    FrameReader r;
    for (size_t i = 0; i < frame.size(); ++i) {
      r.append(frame.data() + i, 1);
      if (i + 1 < frame.size()) {
        ASSERT_EQ(r.next(), Event::kNeedMore) << "at " << i;
      }
    }
    ASSERT_EQ(r.next(), Event::kMessage);
    EXPECT_EQ(r.message_opcode(), Opcode::kBinary);
    size_t header = frame.size() > 70000 ? 14 : (frame.size() > 200 ? 8 : 6);
    EXPECT_EQ(r.payload().size(), frame.size() - header);
  }
}

TEST(WebSocket, ReassemblesFragmentsWithControlFramesBetween) {
  FrameReader r;
  std::string in = client_frame(0x01, "Hel") + client_frame(0x89, "p1") +
                   client_frame(0x00, "lo ") + client_frame(0x80, "world") +
                   client_frame(0x82, std::string_view("\x00\x01", 2));
  r.append(in.data(), in.size());
  ASSERT_EQ(r.next(), Event::kPing);
  EXPECT_EQ(r.payload(), "p1");
  ASSERT_EQ(r.next(), Event::kMessage);
  EXPECT_EQ(r.payload(), "Hello world");
  EXPECT_EQ(r.message_opcode(), Opcode::kText);
  ASSERT_EQ(r.next(), Event::kMessage);
  EXPECT_EQ(r.payload(), std::string("\x00\x01", 2));
  EXPECT_EQ(r.message_opcode(), Opcode::kBinary);
}

TEST(WebSocket, ReadsPongAndClose) {
  FrameReader r;
  std::string in = client_frame(0x8A, "") + client_frame(0x88, close_payload(1000, "bye"));
  r.append(in.data(), in.size());
  EXPECT_EQ(r.next(), Event::kPong);
  ASSERT_EQ(r.next(), Event::kClose);
  EXPECT_EQ(r.close_code(), 1000);
  EXPECT_EQ(r.payload(), "bye");
  EXPECT_EQ(r.next(), Event::kClose);  // sticky
}

TEST(WebSocket, EmptyCloseMeansNoStatus) {
  FrameReader r;
  std::string in = client_frame(0x88, "");
  r.append(in.data(), in.size());
  ASSERT_EQ(r.next(), Event::kClose);
  EXPECT_EQ(r.close_code(), 1005);
}

struct BadCase {
  const char* name;
  std::string input;
  uint16_t code;
};

TEST(WebSocket, ProtocolViolationsGiveTheirCloseCode) {
  const BadCase cases[] = {
      {"unmasked", client_frame(0x81, "hi", false), kCloseProtocolError},
      {"rsv1", client_frame(0xC1, "hi"), kCloseProtocolError},
      {"rsv3", client_frame(0x91, "hi"), kCloseProtocolError},
      {"opcode 3", client_frame(0x83, "hi"), kCloseProtocolError},
      {"opcode 0xB", client_frame(0x8B, "hi"), kCloseProtocolError},
      {"fragmented ping", client_frame(0x09, "hi"), kCloseProtocolError},
      {"long ping", client_frame(0x89, std::string(126, 'p')), kCloseProtocolError},
      {"continuation first", client_frame(0x80, "hi"), kCloseProtocolError},
      {"text inside fragments", client_frame(0x01, "a") + client_frame(0x81, "b"),
       kCloseProtocolError},
      {"bad utf8", client_frame(0x81, "\xc3\x28"), kCloseInvalidData},
      {"bad utf8 across fragments", client_frame(0x01, "\xe2\x82") + client_frame(0x80, "x"),
       kCloseInvalidData},
      {"close 1 byte", client_frame(0x88, "\x03"), kCloseProtocolError},
      {"close 1005", client_frame(0x88, close_payload(1005)), kCloseProtocolError},
      {"close 999", client_frame(0x88, close_payload(999)), kCloseProtocolError},
      {"close 2000", client_frame(0x88, close_payload(2000)), kCloseProtocolError},
      {"close 5000", client_frame(0x88, close_payload(5000)), kCloseProtocolError},
      {"close bad reason", client_frame(0x88, close_payload(1000, "\xff")), kCloseInvalidData},
  };
  for (const BadCase& c : cases) {
    FrameReader r;
    r.append(c.input.data(), c.input.size());
    EXPECT_EQ(r.next(), Event::kError) << c.name;
    EXPECT_EQ(r.error_code(), c.code) << c.name;
    EXPECT_FALSE(r.error_reason().empty()) << c.name;
    EXPECT_EQ(r.next(), Event::kError) << c.name << " (sticky)";
  }
}

TEST(WebSocket, ValidCloseCodesAccepted) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999}) {
    FrameReader r;
    std::string in = client_frame(0x88, close_payload(code));
    r.append(in.data(), in.size());
    ASSERT_EQ(r.next(), Event::kClose) << code;
    EXPECT_EQ(r.close_code(), code);
  }
}

TEST(WebSocket, OversizedMessageRejectedFromItsHeader) {
  FrameReader r(1000);
  // Only the header of a 2000-byte frame: rejected before the payload arrives.
  std::string in = client_frame(0x82, std::string(2000, 'x')).substr(0, 8);
  r.append(in.data(), in.size());
  EXPECT_EQ(r.next(), Event::kError);
  EXPECT_EQ(r.error_code(), kCloseTooBig);

  // Fragments that add up past the limit.
  FrameReader f(1000);
  std::string frags =
      client_frame(0x02, std::string(600, 'a')) + client_frame(0x80, std::string(600, 'b'));
  f.append(frags.data(), frags.size());
  EXPECT_EQ(f.next(), Event::kError);
  EXPECT_EQ(f.error_code(), kCloseTooBig);

  // A 64-bit length with the top bit set is a protocol error, not a huge allocation.
  FrameReader h;
  std::string huge("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
  h.append(huge.data(), huge.size());
  EXPECT_EQ(h.next(), Event::kError);
  EXPECT_EQ(h.error_code(), kCloseProtocolError);

  // Exactly at the limit is fine.
  FrameReader ok(1000);
  std::string at = client_frame(0x82, std::string(1000, 'z'));
  ok.append(at.data(), at.size());
  EXPECT_EQ(ok.next(), Event::kMessage);
}

TEST(WebSocket, DefaultLimitIsOneMebibyte) {
  FrameReader r;
  std::string in = client_frame(0x82, std::string(kMaxMessage + 1, 'x')).substr(0, 14);
  r.append(in.data(), in.size());
  EXPECT_EQ(r.next(), Event::kError);
  EXPECT_EQ(r.error_code(), kCloseTooBig);
}

TEST(WebSocket, ManyMessagesThroughOneReaderKeepItsBufferSmall) {
  FrameReader r;
  std::string frame = client_frame(0x82, std::string(1000, 'm'));
  for (int i = 0; i < 500; ++i) {
    r.append(frame.data(), frame.size());
    ASSERT_EQ(r.next(), Event::kMessage);
    ASSERT_EQ(r.payload().size(), 1000u);
  }
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(WebSocketHandshake, ChecksMethodVersionHeadersAndKey) {
  const HandshakeRequest good{.method = "GET",
                              .http11 = true,
                              .upgrade = "WebSocket",
                              .connection = "keep-alive, Upgrade",
                              .version = "13",
                              .key = "dGhlIHNhbXBsZSBub25jZQ=="};
  EXPECT_EQ(handshake_error(good), "");
  auto with = [&good](auto change) {
    HandshakeRequest r = good;
    change(r);
    return std::string(handshake_error(r));
  };
  EXPECT_NE(with([](HandshakeRequest& r) { r.method = "POST"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.http11 = false; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.upgrade = ""; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.upgrade = "h2c"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.connection = "keep-alive"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.connection = "upgrades"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.version = ""; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.version = "8"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.key = "short"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ="; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ=A"; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZ!=="; }), "");
  EXPECT_NE(with([](HandshakeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ==x"; }), "");
}

}  // namespace
}  // namespace aiowsgi::worker::websocket
