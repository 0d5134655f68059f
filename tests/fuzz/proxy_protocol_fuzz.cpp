// libFuzzer target: parse_proxy_header over untrusted bytes (the first bytes of a connection
// on a [server] proxy_protocol listener). Built only by the fuzz configuration
// (-DAIOWSGI_FUZZ=ON, clang); run by tests/fuzz/run. Input: the stream itself.
// Invariants checked beyond "no crash":
//   - kDone consumes at least 12 and at most the input (v1: at most 107 bytes, ending in
//     CRLF; v2: 16 + its length field); other results consume nothing;
//   - the verdict on a header does not depend on what follows it, and every strict prefix of
//     a header is kIncomplete: a header split across reads parses the same;
//   - an address a header gives, written out as a v1 line again, parses to the same address.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "worker/protocol/proxy_protocol.h"

namespace {

using aiowsgi::fuzz::Piece;
using aiowsgi::worker::parse_proxy_header;
using aiowsgi::worker::ProxyHeader;
using aiowsgi::worker::ProxyParse;

struct Parsed {
  ProxyParse result;
  size_t consumed = 0;
  ProxyHeader header;
};

Parsed parse(std::string_view in) {
  const Piece buf(in);  // exactly sized: ASan sees any read past it
  Parsed p;
  std::string_view reason;
  p.result = parse_proxy_header(buf.data(), buf.size(), &p.consumed, &p.header, &reason);
  if (p.result == ProxyParse::kError) FUZZ_CHECK(!reason.empty());
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Parsed whole = parse(in);
  if (whole.result != ProxyParse::kDone) {
    FUZZ_CHECK(whole.consumed == 0);
    return 0;
  }
  FUZZ_CHECK(whole.consumed >= 12 && whole.consumed <= size);
  const std::string_view header = in.substr(0, whole.consumed);
  if (header[0] == 'P') {
    FUZZ_CHECK(header.size() <= 107 && header.substr(header.size() - 2) == "\r\n");
  } else {
    FUZZ_CHECK(header.size() == 16 + ((size_t{data[14]} << 8) | data[15]));
  }
  const Parsed alone = parse(header);
  FUZZ_CHECK(alone.result == ProxyParse::kDone && alone.consumed == whole.consumed);
  FUZZ_CHECK(alone.header.keeps_peer == whole.header.keeps_peer);
  for (size_t n = 0; n < header.size(); ++n) {
    const Parsed part = parse(header.substr(0, n));
    FUZZ_CHECK(part.result == ProxyParse::kIncomplete && part.consumed == 0);
  }
  if (!whole.header.keeps_peer) {
    FUZZ_CHECK(alone.header.source == whole.header.source &&
               alone.header.source_port == whole.header.source_port);
    const bool v4 = whole.header.source.v4;
    std::string addr = whole.header.source.text();
    std::string line = std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + addr + " " + addr + " " +
                       std::to_string(whole.header.source_port) + " 1\r\n";
    const Parsed again = parse(line);
    FUZZ_CHECK(again.result == ProxyParse::kDone && again.consumed == line.size());
    FUZZ_CHECK(!again.header.keeps_peer && again.header.source == whole.header.source &&
               again.header.source_port == whole.header.source_port);
  }
  return 0;
}
