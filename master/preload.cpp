#include "master/preload.h"

#include <errno.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <utility>

#include "common/guarded.h"
#include "common/log.h"
#include "common/watch_report.h"

namespace aiowsgi::master {

Preloader::Preloader(struct ev_loop* loop, std::function<void(bool)> on_ready,
                     FilesCallback on_files)
    : loop_(loop), on_ready_(std::move(on_ready)), on_files_(std::move(on_files)) {}

Preloader::~Preloader() {
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
  guarded("preload channel handler", [&] { self->on_channel(p); });
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
    if (m.type != PreloadType::kReady || p->ready) continue;
    p->ready = true;
    spdlog::info("preload process (pid {}) imported the app in {:.2f} s", p->pid,
                 ev_now(loop_) - p->started_at);
    // Only fork replies come from now on, and fork_worker() reads them itself.
    ev_io_stop(loop_, &p->io);
    on_ready_(p->booting);
    return;
  }
}

Status Preloader::fork_worker(PreloadProcess* p, const PreloadMessage& request, int control_fd,
                              pid_t* pid) {
  if (!p || !p->ready || !p->channel) {
    return Status::Io("preload process not ready", EAGAIN);
  }
  if (Status s = send_preload(p->channel.get(), request, control_fd); !s.ok()) return s;
  // A synchronous wait: the preload process answers as soon as its fork returns (a few ms
  // even for a large app), and the master must know the pid before its loop runs again, so
  // that the worker's exit is never reaped as an unknown child.
  double deadline = ev_time() + kForkTimeoutSeconds;
  for (;;) {
    double left = deadline - ev_time();
    if (left <= 0 || !wait_readable(p->channel.get(), static_cast<int>(std::ceil(left * 1000)))) {
      spdlog::error(
          "preload process (pid {}) did not answer a fork request in {:.0f} s; killing it", p->pid,
          kForkTimeoutSeconds);
      stop(p, SIGKILL);
      return Status::Io("preload process did not answer", ETIMEDOUT);
    }
    PreloadMessage reply;
    RecvResult r = recv_preload(p->channel.get(), &reply, nullptr);
    if (r == RecvResult::kAgain) continue;
    if (r != RecvResult::kMessage) {
      close_channel(p);
      return Status::Io("preload process gone", EPIPE);
    }
    if (reply.worker_id != request.worker_id) continue;  // a stale answer
    if (reply.type == PreloadType::kForked && reply.value > 0) {
      *pid = static_cast<pid_t>(reply.value);
      return Status::Ok();
    }
    if (reply.type == PreloadType::kForkFailed) {
      return Status::Io("fork in the preload process", reply.value);
    }
  }
}

bool Preloader::on_child(pid_t pid, PreloadProcess* was) {
  auto take = [&](std::unique_ptr<PreloadProcess>& slot) {
    if (!slot || slot->pid != pid) return false;
    // What it said last (an import failure's watch report) before forgetting it.
    if (slot->channel && !slot->ready) on_channel(slot.get());
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
  if (p->pid > 0) ::kill(p->pid, sig);
}

void Preloader::close_channel(PreloadProcess* p) {
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
