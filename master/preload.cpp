#include "master/preload.h"

#include <errno.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/guarded.h"
#include "common/log.h"
#include "common/watch_report.h"

namespace aiowsgi::master {

Preloader::Preloader(struct ev_loop* loop, std::function<void(bool)> on_ready,
                     FilesCallback on_files, std::function<void()> on_forks)
    : loop_(loop),
      on_ready_(std::move(on_ready)),
      on_files_(std::move(on_files)),
      on_forks_(std::move(on_forks)) {
  ev_init(&fork_timer_, &Preloader::fork_timer_cb);
  fork_timer_.data = this;
}

Preloader::~Preloader() {
  ev_timer_stop(loop_, &fork_timer_);
  // Closing the channels is enough: a preload process exits when the master's end closes.
  if (serving_) close_channel(serving_.get());
  if (booting_) close_channel(booting_.get());
  for (auto& p : retired_) close_channel(p.get());
}

Status Preloader::start(bool booting, const ForkChild& fork_child) {
  // Workers are forked by the preload process (double fork): re-parented to the master only
  // if it is a child subreaper. Idempotent.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return Status::Io("prctl(PR_SET_CHILD_SUBREAPER)", errno);
  }
  Result<ControlPair> pair = make_control_pair();
  if (!pair.ok()) return pair.status();
  auto p = std::make_unique<PreloadProcess>();
  p->channel = std::move(pair.value().master_end);
  p->booting = booting;
  p->started_at = ev_now(loop_);
  p->owner = this;
  Result<pid_t> forked = fork_child(pair.value().worker_end.get(), p->channel.get());
  if (!forked.ok()) return forked.status();
  pid_t pid = forked.value();
  p->pid = pid;
  ev_io_init(&p->io, &Preloader::channel_cb, p->channel.get(), EV_READ);
  p->io.data = p.get();
  ev_io_start(loop_, &p->io);
  spdlog::info("preload process started, pid {}{}", pid, booting ? " (new generation)" : "");
  std::unique_ptr<PreloadProcess>& slot = booting ? booting_ : serving_;
  if (slot) {  // not expected: the caller starts one only where none is
    stop(slot.get(), SIGTERM);
    retired_.push_back(std::move(slot));
  }
  slot = std::move(p);
  return Status::Ok();
}

void Preloader::channel_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* p = static_cast<PreloadProcess*>(w->data);
  auto* self = static_cast<Preloader*>(p->owner);
  guarded("preload channel handler", [&] {
    self->on_channel(p);
    if (!self->outcomes_.empty() && self->on_forks_) self->on_forks_();
  });
}

void Preloader::fork_timer_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<Preloader*>(w->data);
  guarded("preload fork timer", [&] {
    self->on_fork_timer();
    if (!self->outcomes_.empty() && self->on_forks_) self->on_forks_();
  });
}

void Preloader::on_channel(PreloadProcess* p) {
  for (;;) {
    if (!p->channel) return;
    // Two kinds of datagram share the channel, told apart by size: preload messages, and the
    // watch reports ([app] reload) the process sends after its import.
    ssize_t size = ::recv(p->channel.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (size > static_cast<ssize_t>(sizeof(PreloadMessage))) {
      ControlMessage cm;
      std::string files;
      RecvResult r = recv_control_or_files(p->channel.get(), &cm, &files);
      if (r == RecvResult::kMessage && cm.type == ControlType::kWatchFiles && on_files_) {
        on_files_(files, "preload process (pid " + std::to_string(p->pid) + ")");
      }
      if (r == RecvResult::kMessage) continue;
    }
    PreloadMessage m;
    RecvResult r = recv_preload(p->channel.get(), &m, nullptr);
    if (r == RecvResult::kAgain) return;
    if (r != RecvResult::kMessage) {
      // It died or closed its end: ev_child reports the exit.
      close_channel(p);
      return;
    }
    if (m.type == PreloadType::kForked || m.type == PreloadType::kForkFailed) {
      on_fork_reply(p, m);
      continue;
    }
    if (m.type != PreloadType::kReady || p->ready) continue;
    p->ready = true;
    spdlog::info("preload process (pid {}) imported the app in {:.2f} s", p->pid,
                 ev_now(loop_) - p->started_at);
    // The watcher stays: fork replies come on it from now on.
    on_ready_(p->booting);
    return;
  }
}

Status Preloader::request_fork(PreloadProcess* p, const PreloadMessage& request, int control_fd,
                               uint64_t serial) {
  if (!p || !p->ready || !p->channel) {
    return Status::Io("preload process not ready", EAGAIN);
  }
  if (Status s = send_preload(p->channel.get(), request, control_fd); !s.ok()) return s;
  p->forks.push_back(PendingFork{serial, request.worker_id, ev_now(loop_) + fork_timeout_});
  arm_fork_timer();
  return Status::Ok();
}

void Preloader::on_fork_reply(PreloadProcess* p, const PreloadMessage& m) {
  // Answers come in request order; one naming no pending request is stale (its request
  // failed here already) and is dropped.
  auto it = std::find_if(p->forks.begin(), p->forks.end(),
                         [&](const PendingFork& f) { return f.worker_id == m.worker_id; });
  if (it == p->forks.end()) return;
  ForkOutcome out;
  out.serial = it->serial;
  if (m.type == PreloadType::kForked && m.value > 0) {
    out.pid = static_cast<pid_t>(m.value);
  } else {
    out.why = Status::Io("fork in the preload process",
                         m.type == PreloadType::kForkFailed ? m.value : EPROTO);
  }
  p->forks.erase(it);
  outcomes_.push_back(std::move(out));
  arm_fork_timer();
}

void Preloader::on_fork_timer() {
  double now = ev_now(loop_);
  for (PreloadProcess* p : {serving_.get(), booting_.get()}) {
    if (p == nullptr || p->forks.empty() || p->forks.front().deadline > now) continue;
    spdlog::error("preload process (pid {}) did not answer a fork request in {:g} s; killing it",
                  p->pid, fork_timeout_);
    fail_forks(p, Status::Io("preload process did not answer", ETIMEDOUT));
    stop(p, SIGKILL);
  }
  arm_fork_timer();
}

void Preloader::arm_fork_timer() {
  ev_timer_stop(loop_, &fork_timer_);
  double next = 0;
  for (PreloadProcess* p : {serving_.get(), booting_.get()}) {
    if (p != nullptr && !p->forks.empty() && (next == 0 || p->forks.front().deadline < next)) {
      next = p->forks.front().deadline;
    }
  }
  if (next == 0) return;
  // A little past the deadline, so the comparison against ev_now() in the callback holds.
  ev_timer_set(&fork_timer_, std::max(0.001, next - ev_now(loop_) + 0.001), 0.0);
  ev_timer_start(loop_, &fork_timer_);
}

bool Preloader::fork_pending() const {
  return !outcomes_.empty() || (serving_ && !serving_->forks.empty()) ||
         (booting_ && !booting_->forks.empty());
}

void Preloader::fail_forks(PreloadProcess* p, const Status& why) {
  while (!p->forks.empty()) {
    ForkOutcome out;
    out.serial = p->forks.front().serial;
    out.why = why;
    outcomes_.push_back(std::move(out));
    p->forks.pop_front();
  }
}

bool Preloader::on_child(pid_t pid, PreloadProcess* was) {
  auto take = [&](std::unique_ptr<PreloadProcess>& slot) {
    if (!slot || slot->pid != pid) return false;
    // What it said last (an import failure's watch report, the answer to a fork request)
    // before forgetting it.
    if (slot->channel) on_channel(slot.get());
    close_channel(slot.get());
    was->pid = slot->pid;
    was->ready = slot->ready;
    was->booting = slot->booting;
    was->stopping = slot->stopping;
    was->started_at = slot->started_at;
    slot.reset();
    return true;
  };
  if (take(serving_) || take(booting_)) return true;
  for (auto it = retired_.begin(); it != retired_.end(); ++it) {
    if (take(*it)) {
      retired_.erase(it);
      return true;
    }
  }
  return false;
}

void Preloader::promote() {
  if (!booting_) {
    // The new generation did without preload: the old preload process is not needed.
    if (serving_) {
      stop(serving_.get(), SIGTERM);
      retired_.push_back(std::move(serving_));
    }
    return;
  }
  if (serving_) {
    stop(serving_.get(), SIGTERM);
    retired_.push_back(std::move(serving_));
  }
  serving_ = std::move(booting_);
  serving_->booting = false;
}

void Preloader::discard_booting() {
  if (!booting_) return;
  stop(booting_.get(), SIGTERM);
  retired_.push_back(std::move(booting_));
}

void Preloader::stop_all(int sig) {
  if (serving_) stop(serving_.get(), sig);
  if (booting_) stop(booting_.get(), sig);
  for (auto& p : retired_) stop(p.get(), sig);
}

void Preloader::stop(PreloadProcess* p, int sig) {
  p->stopping = true;
  close_channel(p);
  if (p->pid > 0) {
    ::kill(p->pid, sig);
    // A stopped process (SIGSTOP, a debugger) acts on the signal only once continued, as
    // systemd does after its SIGTERM; SIGKILL needs no help.
    if (sig != SIGKILL) ::kill(p->pid, SIGCONT);
  }
}

void Preloader::close_channel(PreloadProcess* p) {
  fail_forks(p, Status::Io("preload process gone", EPIPE));
  arm_fork_timer();
  if (!p->channel) return;
  ev_io_stop(loop_, &p->io);
  p->channel.reset();
}

void Preloader::channel_fds(std::vector<int>* out) const {
  auto add = [out](const PreloadProcess* p) {
    if (p && p->channel) out->push_back(p->channel.get());
  };
  add(serving_.get());
  add(booting_.get());
  for (const auto& p : retired_) add(p.get());
}

}  // namespace aiowsgi::master
