// Tests for ChunkedDecoder on its own (RequestParser's tests cover it behind a head). Inputs
// end at a PROT_NONE page, so any over-read crashes the test.

#include "worker/protocol/chunked_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "tests/unit/guarded_buffer.h"

namespace aiowsgi::worker {
namespace {

using aiowsgi::test_support::GuardedBuffer;
using Result = ChunkedDecoder::Result;

struct Decoded {
  Result result = Result::kIncomplete;
  size_t consumed = 0;
  int status = 0;
  std::string body;
};

// Feeds |in| |piece| bytes at a time (0: all at once), each piece in its own guarded buffer.
Decoded decode(std::string_view in, size_t piece = 0, ChunkedDecoder::Limits limits = {}) {
  ChunkedDecoder d;
  d.reset(limits);
  Decoded r;
  if (piece == 0) piece = in.size() + 1;
  for (size_t off = 0; off < in.size(); off += piece) {
    const GuardedBuffer buf(in.substr(off, piece));
    size_t consumed = 0;
    r.result = d.feed(buf.view().data(), buf.view().size(), &consumed, &r.body);
    r.consumed += consumed;
    if (r.result != Result::kIncomplete) break;
  }
  r.status = d.error_status();
  EXPECT_EQ(d.body_bytes(), r.body.size());
  EXPECT_EQ(d.done(), r.result == Result::kDone);
  return r;
}

TEST(ChunkedDecoder, DecodesChunksExtensionsAndTrailersInAnyPieces) {
  const std::string in = "4;name=\"v\"\r\nWiki\r\n5 ;x\r\npedia\r\n0\r\nExpires: never\r\n\r\n";
  for (size_t piece : {0, 1, 2, 3, 7}) {
    const Decoded d = decode(in, piece);
    EXPECT_EQ(d.result, Result::kDone) << piece;
    EXPECT_EQ(d.body, "Wikipedia") << piece;
    EXPECT_EQ(d.consumed, in.size()) << piece;
  }
}

TEST(ChunkedDecoder, StopsAtTheEndOfTheBody) {
  const Decoded d = decode("1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
  EXPECT_EQ(d.result, Result::kDone);
  EXPECT_EQ(d.consumed, 11u);
  EXPECT_EQ(d.body, "a");
}

TEST(ChunkedDecoder, RejectsBadFraming) {
  for (std::string_view bad : {"x\r\n", "1\na\r\n", "1\r\nab\r\n", "1\r\na\n\n", "1 2\r\n",
                               "0\r\nbad name: v\r\n\r\n", "0\r\n\n", "0\r\nX: a\rb\r\n"}) {
    const Decoded d = decode(bad);
    EXPECT_EQ(d.result, Result::kError) << bad;
    EXPECT_EQ(d.status, 400) << bad;
    EXPECT_EQ(d.consumed, 0u) << bad;
  }
}

TEST(ChunkedDecoder, ChunkSizeLimits) {
  EXPECT_EQ(decode(std::string(32, '0') + "1\r\na\r\n0\r\n\r\n").status, 400);  // 33 digits
  EXPECT_EQ(decode(std::string(31, '0') + "1\r\na\r\n0\r\n\r\n").result, Result::kDone);
  EXPECT_EQ(decode("10000000000000000\r\n").status, 400);  // 2^64 overflows
  EXPECT_EQ(decode("ffffffffffffffff\r\n").result, Result::kIncomplete);
}

TEST(ChunkedDecoder, BodyLimitRejectsTheSizeLineBeforeItsData) {
  const ChunkedDecoder::Limits limits{.max_body_bytes = 5};
  EXPECT_EQ(decode("5\r\nabcde\r\n0\r\n\r\n", 0, limits).result, Result::kDone);
  const Decoded d = decode("3\r\nabc\r\n3\r\n", 0, limits);
  EXPECT_EQ(d.result, Result::kError);
  EXPECT_EQ(d.status, 413);
  EXPECT_EQ(d.body, "abc");
}

TEST(ChunkedDecoder, OverheadIsCapped) {
  const std::string ext = "1;" + std::string(ChunkedDecoder::kMinOverheadBytes + 1, 'e') + "\r\n";
  EXPECT_EQ(decode(ext).status, 400);
  const std::string trailer =
      "0\r\nX: " + std::string(ChunkedDecoder::kMinOverheadBytes, 'v') + "\r\n\r\n";
  EXPECT_EQ(decode(trailer).status, 431);
  // A larger configured limit is honoured.
  EXPECT_EQ(decode(trailer, 0, {.max_overhead_bytes = 8192}).result, Result::kDone);
}

TEST(ChunkedDecoder, ResetStartsANewBody) {
  ChunkedDecoder d;
  d.reset({});
  std::string out;
  size_t consumed = 0;
  const std::string_view bad = "zz";
  EXPECT_EQ(d.feed(bad.data(), bad.size(), &consumed, &out), Result::kError);
  EXPECT_EQ(d.feed("0\r\n\r\n", 5, &consumed, &out), Result::kError);  // stays failed
  d.reset({});
  EXPECT_EQ(d.feed("0\r\n\r\n", 5, &consumed, &out), Result::kDone);
  EXPECT_EQ(consumed, 5u);
  EXPECT_EQ(d.error_status(), 0);
}

}  // namespace
}  // namespace aiowsgi::worker
