// Tests for parse_proxy_header. Inputs end against a PROT_NONE page (GuardedBuffer), so any
// over-read crashes; every strict prefix of a valid header must be "incomplete".

#include "worker/protocol/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "tests/unit/guarded_buffer.h"

namespace aiowsgi::worker {
namespace {

using aiowsgi::test_support::GuardedBuffer;

struct Parsed {
  ProxyParse result;
  size_t consumed = 0;
  ProxyHeader header;
  std::string reason;
};

Parsed parse(std::string_view in) {
  GuardedBuffer buf(in);
  Parsed p;
  std::string_view reason;
  p.result = parse_proxy_header(buf.data(), buf.size(), &p.consumed, &p.header, &reason);
  p.reason = std::string(reason);
  return p;
}

void expect_prefixes_incomplete(std::string_view header) {
  for (size_t n = 0; n < header.size(); ++n) {
    Parsed p = parse(header.substr(0, n));
    EXPECT_EQ(p.result, ProxyParse::kIncomplete) << "prefix of " << n << " bytes: " << p.reason;
    EXPECT_EQ(p.consumed, 0u);
  }
}

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(unsigned char ver_cmd, unsigned char fam, std::string body) {
  std::string h = kSig;
  h.push_back(static_cast<char>(ver_cmd));
  h.push_back(static_cast<char>(fam));
  h.push_back(static_cast<char>(body.size() >> 8));
  h.push_back(static_cast<char>(body.size() & 0xff));
  return h + body;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

TEST(ProxyProtocol, V1Tcp4) {
  const std::string h = "PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
  Parsed p = parse(h + "GET / HTTP/1.1\r\n");
  ASSERT_EQ(p.result, ProxyParse::kDone) << p.reason;
  EXPECT_EQ(p.consumed, h.size());
  EXPECT_FALSE(p.header.keeps_peer);
  EXPECT_EQ(p.header.source.text(), "192.0.2.7");
  EXPECT_EQ(p.header.source_port, 56324);
  expect_prefixes_incomplete(h);
}

TEST(ProxyProtocol, V1Tcp6) {
  const std::string h = "PROXY TCP6 2001:db8::1 ::1 65535 80\r\n";
  Parsed p = parse(h);
  ASSERT_EQ(p.result, ProxyParse::kDone) << p.reason;
  EXPECT_EQ(p.header.source.text(), "2001:db8::1");
  EXPECT_EQ(p.header.source_port, 65535);
  expect_prefixes_incomplete(h);
}

TEST(ProxyProtocol, V1UnknownKeepsPeer) {
  Parsed p = parse("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nGET");
  ASSERT_EQ(p.result, ProxyParse::kDone) << p.reason;
  EXPECT_TRUE(p.header.keeps_peer);
  EXPECT_EQ(p.consumed, 59u);
  EXPECT_EQ(parse("PROXY UNKNOWN\r\n").result, ProxyParse::kDone);
}

TEST(ProxyProtocol, V1Malformed) {
  for (std::string_view bad : {
           "GET / HTTP/1.1\r\n",                      // no header at all
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",    // six fields
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",        // four
           "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",          // family mismatch
           "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",          //
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  // port range
           "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",     // leading zero
           "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",     //
           "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",     // double space
           "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",      // protocol
           "PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",     // stray LF
           "PROXY TCP6 [::1] [::1] 1 2\r\n",          // brackets
           "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      // case
           "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",     // stray CR
           "PROXY UNKNOWN a\rb\r\n",                  //   in the ignored rest too
       }) {
    Parsed p = parse(bad);
    EXPECT_EQ(p.result, ProxyParse::kError) << bad;
    EXPECT_EQ(p.consumed, 0u) << bad;  // found by the fuzz target: an error consumes nothing
    EXPECT_FALSE(p.reason.empty()) << bad;
  }
  // Spec 2.1: 107 bytes at most; a receiver must not wait for more.
  // A NUL inside an address (inet_pton would stop at it; found by the fuzz target).
  Parsed nul = parse(std::string("PROXY TCP4 1.2.3.4 5.6.7.8\0x 1 2\r\n", 34));
  EXPECT_EQ(nul.result, ProxyParse::kError);
  std::string longline = "PROXY UNKNOWN " + std::string(100, 'x');
  EXPECT_EQ(parse(longline).result, ProxyParse::kError);
  EXPECT_EQ(parse(longline.substr(0, 106)).result, ProxyParse::kIncomplete);
}

TEST(ProxyProtocol, V2Inet) {
  std::string body = bytes({203, 0, 113, 9, 10, 0, 0, 1, 0xdb, 0xe4, 0x01, 0xbb});
  body += bytes({0x04, 0x00, 0x02, 'h', '2'});  // a TLV (ALPN-like), skipped
  const std::string h = v2(0x21, 0x11, body);
  Parsed p = parse(h + "GET / HTTP/1.1\r\n");
  ASSERT_EQ(p.result, ProxyParse::kDone) << p.reason;
  EXPECT_EQ(p.consumed, h.size());
  EXPECT_FALSE(p.header.keeps_peer);
  EXPECT_EQ(p.header.source.text(), "203.0.113.9");
  EXPECT_EQ(p.header.source_port, 0xdbe4);
  expect_prefixes_incomplete(h);
}

TEST(ProxyProtocol, V2Inet6) {
  std::string src = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5});
  std::string dst(15, '\0');
  dst.push_back(1);
  const std::string h = v2(0x21, 0x21, src + dst + bytes({0x30, 0x39, 0, 80}));
  Parsed p = parse(h);
  ASSERT_EQ(p.result, ProxyParse::kDone) << p.reason;
  EXPECT_EQ(p.header.source.text(), "2001:db8::5");
  EXPECT_EQ(p.header.source_port, 12345);
  expect_prefixes_incomplete(h);
}

TEST(ProxyProtocol, V2LocalAndUnspecKeepPeer) {
  // LOCAL: a health check from the balancer itself; any family, the block is skipped.
  Parsed local = parse(v2(0x20, 0x00, "") + "GET");
  ASSERT_EQ(local.result, ProxyParse::kDone) << local.reason;
  EXPECT_TRUE(local.header.keeps_peer);
  EXPECT_EQ(local.consumed, 16u);
  Parsed local_inet = parse(v2(0x20, 0x11, std::string(12, '\1')));
  ASSERT_EQ(local_inet.result, ProxyParse::kDone);
  EXPECT_TRUE(local_inet.header.keeps_peer);
  Parsed unspec = parse(v2(0x21, 0x00, ""));
  ASSERT_EQ(unspec.result, ProxyParse::kDone);
  EXPECT_TRUE(unspec.header.keeps_peer);
  Parsed unix_fam = parse(v2(0x21, 0x31, std::string(216, 'x')));
  ASSERT_EQ(unix_fam.result, ProxyParse::kDone);
  EXPECT_TRUE(unix_fam.header.keeps_peer);
}

TEST(ProxyProtocol, V2Malformed) {
  for (const std::string& bad : {
           v2(0x11, 0x11, std::string(12, '\0')),  // version 1
           v2(0x22, 0x11, std::string(12, '\0')),  // command 2
           v2(0x21, 0x41, std::string(12, '\0')),  // family 4
           v2(0x21, 0x11, std::string(11, '\0')),  // IPv4 block too short
           v2(0x21, 0x21, std::string(35, '\0')),  // IPv6 block too short
       }) {
    Parsed p = parse(bad);
    EXPECT_EQ(p.result, ProxyParse::kError);
    EXPECT_EQ(p.consumed, 0u);
  }
  std::string sig = kSig;
  sig[11] = 'X';
  EXPECT_EQ(parse(sig + bytes({0x21, 0x11, 0, 12})).result, ProxyParse::kError);
  // A partial signature that already differs is an error, not a wait.
  EXPECT_EQ(parse("\r\n\r\nX").result, ProxyParse::kError);
}

}  // namespace
}  // namespace aiowsgi::worker
