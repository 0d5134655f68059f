#include "common/preload_channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace aiowsgi {
namespace {

TEST(PreloadChannel, MessageCarriesADescriptor) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok());
  UniqueFd master_end = std::move(pair.value().master_end);
  UniqueFd child_end = std::move(pair.value().worker_end);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd rd(p[0]), wr(p[1]);

  PreloadMessage req;
  req.type = PreloadType::kFork;
  req.worker_id = 3;
  req.num_workers = 4;
  req.score = 0x1234;
  ASSERT_TRUE(send_preload(master_end.get(), req, wr.get()).ok());
  wr.reset();  // the sender's copy: the receiver has its own

  ASSERT_TRUE(wait_readable(child_end.get(), 1000));
  PreloadMessage got;
  UniqueFd passed;
  ASSERT_EQ(recv_preload(child_end.get(), &got, &passed), RecvResult::kMessage);
  EXPECT_EQ(got.type, PreloadType::kFork);
  EXPECT_EQ(got.worker_id, 3u);
  EXPECT_EQ(got.num_workers, 4);
  EXPECT_EQ(got.score, 0x1234u);
  ASSERT_TRUE(passed);
  EXPECT_EQ(::fcntl(passed.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ASSERT_EQ(::write(passed.get(), "x", 1), 1);  // the same pipe, through the passed copy
  char c = 0;
  ASSERT_EQ(::read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(PreloadChannel, SkipsForeignDatagramsAndSeesTheClose) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok());
  UniqueFd master_end = std::move(pair.value().master_end);
  UniqueFd child_end = std::move(pair.value().worker_end);
  PreloadMessage m;
  EXPECT_EQ(recv_preload(master_end.get(), &m, nullptr), RecvResult::kAgain);
  EXPECT_FALSE(wait_readable(master_end.get(), 0));
  ASSERT_EQ(::send(child_end.get(), "junk", 4, 0), 4);
  PreloadMessage ready;
  ready.type = PreloadType::kForked;
  ready.value = 4242;
  ASSERT_TRUE(send_preload(child_end.get(), ready).ok());
  ASSERT_EQ(recv_preload(master_end.get(), &m, nullptr), RecvResult::kMessage);
  EXPECT_EQ(m.type, PreloadType::kForked);
  EXPECT_EQ(m.value, 4242);
  child_end.reset();
  EXPECT_EQ(recv_preload(master_end.get(), &m, nullptr), RecvResult::kClosed);
  EXPECT_STREQ(preload_type_name(PreloadType::kFork), "fork");
}

}  // namespace
}  // namespace aiowsgi
