// Tests for the master's side of the preload channel (master/preload.h): fork requests are
// answered on the loop, never waited for, and a preload process that does not answer is
// killed. The test plays the preload process on the channel; the process it names is a
// forked child that only waits for signals (no Python, no gtest code runs in it).
#include "master/preload.h"

#include <ev.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace aiowsgi::master {
namespace {

class PreloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = ev_loop_new(EVFLAG_AUTO);
    ASSERT_NE(loop_, nullptr);
    preloader_ = std::make_unique<Preloader>(
        loop_, [this](bool) { ++ready_calls_; }, nullptr, [this] { ++fork_calls_; });
  }
  void TearDown() override {
    preloader_.reset();
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    ev_loop_destroy(loop_);
  }

  // Starts a "preload process": a child that waits for signals, and the test holds the other
  // end of its channel. Then says kReady, as the real one does after the import.
  void start_ready() {
    auto fork_child = [this](int child_end, int) -> Result<pid_t> {
      peer_ = UniqueFd(::fcntl(child_end, F_DUPFD_CLOEXEC, 0));
      pid_t pid = ::fork();
      if (pid == 0) {
        for (;;) ::pause();
      }
      child_ = pid;
      return Result<pid_t>::ok(pid);
    };
    ASSERT_TRUE(preloader_->start(false, fork_child).ok());
    ASSERT_TRUE(peer_);
    PreloadMessage ready;
    ready.type = PreloadType::kReady;
    ASSERT_TRUE(send_preload(peer_.get(), ready).ok());
    ASSERT_TRUE(run_until([this] { return ready_calls_ > 0; }));
    ASSERT_TRUE(preloader_->serving()->ready);
  }

  // Runs the loop until |done| or 5 s passed.
  template <typename F>
  bool run_until(F done) {
    double deadline = ev_time() + 5;
    while (!done() && ev_time() < deadline) {
      ev_run(loop_, EVRUN_ONCE | EVRUN_NOWAIT);
      ::usleep(1000);
    }
    return done();
  }

  // Asks for worker |id| over a fresh pipe (its end is passed along, as a control pipe is).
  Status request(uint32_t id, uint64_t serial) {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd(p[0]), wr(p[1]);
    PreloadMessage req;
    req.type = PreloadType::kFork;
    req.worker_id = id;
    return preloader_->request_fork(preloader_->serving(), req, wr.get(), serial);
  }

  // The child's wait status once it ended (the test reaps it), or -1 when it still runs.
  int child_status(double within) {
    double deadline = ev_time() + within;
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(child_, &status, WNOHANG);
      if (r == child_) {
        child_ = -1;
        return status;
      }
      if (ev_time() > deadline) return -1;
      ::usleep(1000);
    }
  }

  struct ev_loop* loop_ = nullptr;
  std::unique_ptr<Preloader> preloader_;
  UniqueFd peer_;
  pid_t child_ = -1;
  int ready_calls_ = 0;
  int fork_calls_ = 0;
};

TEST_F(PreloaderTest, AForkRequestReturnsAtOnceAndItsAnswerComesOnTheLoop) {
  start_ready();
  ASSERT_TRUE(request(2, 41).ok());
  ASSERT_TRUE(request(3, 42).ok());
  EXPECT_TRUE(preloader_->fork_pending());
  EXPECT_TRUE(preloader_->take_fork_outcomes().empty());  // nothing waited for an answer

  // The preload process's side: two requests, each with its descriptor, answered in order.
  for (uint32_t id : {2u, 3u}) {
    PreloadMessage got;
    UniqueFd passed;
    ASSERT_TRUE(wait_readable(peer_.get(), 1000));
    ASSERT_EQ(recv_preload(peer_.get(), &got, &passed), RecvResult::kMessage);
    EXPECT_EQ(got.type, PreloadType::kFork);
    EXPECT_EQ(got.worker_id, id);
    EXPECT_TRUE(passed);
    PreloadMessage reply;
    reply.worker_id = id;
    if (id == 2) {
      reply.type = PreloadType::kForked;
      reply.value = 12345;
    } else {
      reply.type = PreloadType::kForkFailed;
      reply.value = EAGAIN;
    }
    ASSERT_TRUE(send_preload(peer_.get(), reply).ok());
  }
  std::vector<ForkOutcome> outcomes;
  ASSERT_TRUE(run_until([&] {
    for (ForkOutcome& o : preloader_->take_fork_outcomes()) outcomes.push_back(std::move(o));
    return outcomes.size() == 2;
  }));
  EXPECT_GT(fork_calls_, 0);
  EXPECT_EQ(outcomes[0].serial, 41u);
  EXPECT_EQ(outcomes[0].pid, 12345);
  EXPECT_EQ(outcomes[1].serial, 42u);
  EXPECT_LE(outcomes[1].pid, 0);
  EXPECT_FALSE(outcomes[1].why.ok());
  EXPECT_FALSE(preloader_->fork_pending());
  EXPECT_EQ(child_status(0), -1);  // the preload process lives on
}

TEST_F(PreloaderTest, AProcessThatDoesNotAnswerIsKilledAndItsRequestFails) {
  start_ready();
  preloader_->set_fork_timeout(0.2);
  ASSERT_EQ(::kill(child_, SIGSTOP), 0);  // as `kill -STOP`: it never answers
  double asked = ev_time();
  ASSERT_TRUE(request(1, 7).ok());
  std::vector<ForkOutcome> outcomes;
  ASSERT_TRUE(run_until([&] {
    for (ForkOutcome& o : preloader_->take_fork_outcomes()) outcomes.push_back(std::move(o));
    return !outcomes.empty();
  }));
  // Not at once. libev starts the timer from the loop's cached time, which may be a little
  // older than |asked|: no exact lower bound.
  EXPECT_GE(ev_time() - asked, 0.1);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].serial, 7u);
  EXPECT_LE(outcomes[0].pid, 0);
  EXPECT_NE(outcomes[0].why.message().find("did not answer"), std::string::npos)
      << outcomes[0].why.message();
  int status = child_status(5);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(preloader_->serving()->stopping);
}

TEST_F(PreloaderTest, StoppingFailsPendingRequestsAndEndsAStoppedProcess) {
  start_ready();
  ASSERT_EQ(::kill(child_, SIGSTOP), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(child_, &st, WUNTRACED), child_);
  ASSERT_TRUE(WIFSTOPPED(st));
  ASSERT_TRUE(request(1, 9).ok());
  // A graceful stop: SIGTERM, which a stopped process acts on only once continued.
  preloader_->stop_all(SIGTERM);
  std::vector<ForkOutcome> outcomes = preloader_->take_fork_outcomes();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].serial, 9u);
  EXPECT_LE(outcomes[0].pid, 0);
  EXPECT_FALSE(preloader_->fork_pending());
  int status = child_status(5);
  ASSERT_NE(status, -1) << "the stopped preload process did not act on SIGTERM";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
}

}  // namespace
}  // namespace aiowsgi::master
