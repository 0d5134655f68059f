// Control pipe: round trips over a real socketpair, non-blocking behaviour, peer close.
#include "common/control.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

namespace aiowsgi {
namespace {

TEST(Control, PairIsSeqpacketCloexecAndMasterEndNonBlocking) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  int type = 0;
  socklen_t len = sizeof type;
  ASSERT_EQ(getsockopt(m.get(), SOL_SOCKET, SO_TYPE, &type, &len), 0);
  EXPECT_EQ(type, SOCK_SEQPACKET);
  EXPECT_TRUE(fcntl(m.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(w.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(m.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_FALSE(fcntl(w.get(), F_GETFL) & O_NONBLOCK);
}

TEST(Control, RoundTripBothDirections) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;

  ControlMessage hb;
  hb.type = ControlType::kHeartbeat;
  hb.worker_id = 7;
  hb.requests = 123456789012345ULL;
  hb.busy_cores = 42;
  hb.oldest_request_ms = 99;
  ASSERT_TRUE(send_message(w.get(), hb).ok());
  ASSERT_TRUE(send_control(w.get(), ControlType::kReady, 7).ok());

  ControlMessage got;
  ASSERT_EQ(recv_control(m.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kHeartbeat);
  EXPECT_EQ(got.worker_id, 7u);
  EXPECT_EQ(got.requests, 123456789012345ULL);
  EXPECT_EQ(got.busy_cores, 42u);
  EXPECT_EQ(got.oldest_request_ms, 99u);
  ASSERT_EQ(recv_control(m.get(), &got), RecvResult::kMessage);  // message boundaries are kept
  EXPECT_EQ(got.type, ControlType::kReady);
  EXPECT_EQ(got.worker_id, 7u);
  EXPECT_EQ(got.requests, 0u);  // a command or state report carries no counters
  EXPECT_EQ(recv_control(m.get(), &got), RecvResult::kAgain);

  ASSERT_TRUE(send_control(m.get(), ControlType::kDrain, 7).ok());
  // The worker end is blocking, but recv_control never blocks.
  ASSERT_EQ(recv_control(w.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kDrain);
  EXPECT_EQ(recv_control(w.get(), &got), RecvResult::kAgain);
}

TEST(Control, WrongSizedDatagramsAreSkipped) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  char junk[5] = "junk";
  ASSERT_EQ(send(w.get(), junk, sizeof junk, 0), static_cast<ssize_t>(sizeof junk));
  char big[sizeof(ControlMessage) + 8] = {};
  ASSERT_EQ(send(w.get(), big, sizeof big, 0), static_cast<ssize_t>(sizeof big));
  ControlMessage ok;
  ok.type = ControlType::kBootError;
  ASSERT_TRUE(send_message(w.get(), ok).ok());
  ControlMessage got;
  ASSERT_EQ(recv_control(m.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kBootError);
}

TEST(Control, PeerCloseIsReportedAndSendFailsWithoutSigpipe) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  ControlMessage msg;
  msg.type = ControlType::kAppLoadError;
  ASSERT_TRUE(send_message(w.get(), msg).ok());
  w.reset();
  ControlMessage got;
  // What was sent before the close is still delivered, then the close.
  ASSERT_EQ(recv_control(m.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kAppLoadError);
  EXPECT_EQ(recv_control(m.get(), &got), RecvResult::kClosed);
  Status s = send_message(m.get(), msg);  // would raise SIGPIPE without MSG_NOSIGNAL
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kIo);
}

TEST(Control, FullPipeGivesAnErrorInsteadOfBlocking) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;  // the worker end stays open, never read
  ControlMessage msg;
  msg.type = ControlType::kHeartbeat;
  Status s;
  for (int i = 0; i < 100000 && s.ok(); ++i) s = send_message(m.get(), msg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("heartbeat"), std::string::npos) << s.message();
}

// A worker's websocket clients are told whether to reconnect (1012) or that the server is
// gone (1001): the reason must reach the worker, and a plain kDrain means a shutdown.
TEST(Control, DrainCarriesItsReason) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  ASSERT_TRUE(send_drain(m.get(), 3, DrainReason::kRestart).ok());
  ASSERT_TRUE(send_drain(m.get(), 3, DrainReason::kShutdown).ok());
  ASSERT_TRUE(send_control(m.get(), ControlType::kDrain, 3).ok());
  ControlMessage got;
  ASSERT_EQ(recv_control(w.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kDrain);
  EXPECT_EQ(got.worker_id, 3u);
  EXPECT_EQ(got.drain_reason, DrainReason::kRestart);
  ASSERT_EQ(recv_control(w.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.drain_reason, DrainReason::kShutdown);
  ASSERT_EQ(recv_control(w.get(), &got), RecvResult::kMessage);
  EXPECT_EQ(got.drain_reason, DrainReason::kShutdown);
  EXPECT_EQ(recv_control(w.get(), &got), RecvResult::kAgain);
  EXPECT_STREQ(drain_reason_name(DrainReason::kRestart), "restart");
  EXPECT_STREQ(drain_reason_name(DrainReason::kShutdown), "shutdown");
}

TEST(Control, TypeNames) {
  EXPECT_STREQ(control_type_name(ControlType::kReady), "ready");
  EXPECT_STREQ(control_type_name(ControlType::kReopenLogs), "reopen-logs");
  EXPECT_STREQ(control_type_name(static_cast<ControlType>(999)), "unknown");
}

}  // namespace
}  // namespace aiowsgi
