// The Arbiter's USR1 and USR2: log reopening, and its side of an upgrade (master/upgrade.h):
// the old master starts the new one, and drains as on TERM once it serves.
#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "common/log.h"
#include "master/arbiter.h"
#include "master/stats_server.h"
#include "master/systemd.h"
#include "master/upgrade.h"

namespace aiowsgi::master {

void Arbiter::reopen_logs() {
  Status s = log::reopen();
  if (s.ok()) {
    spdlog::info("SIGUSR1: log files reopened");
  } else {
    spdlog::error("SIGUSR1: {}", s.message());
  }
  for (WorkerProcess* p : table_.all()) send_command(p, ControlType::kReopenLogs);
}

void Arbiter::set_upgrade_hooks(std::function<void()> on_serving,
                                std::function<void()> on_handover) {
  on_serving_ = std::move(on_serving);
  on_handover_ = std::move(on_handover);
}

void Arbiter::start_upgrade() {
  if (state_ != MasterState::kRunning) {
    spdlog::warn("SIGUSR2 ignored: the master is {}; an upgrade starts only while it serves",
                 master_state_name(state_));
    return;
  }
  if (!upgrader_) {
    upgrader_ = std::make_unique<Upgrader>(loop_, [this](pid_t pid) { hand_over(pid); });
  }
  std::vector<int> fds;
  for (const auto& l : reload_.listeners().current()) fds.push_back(l->fd.get());
  // The stats sockets too: the new master could not bind their addresses while this one
  // holds them.
  std::vector<int> stats_fds = stats_ ? stats_->listen_fds() : std::vector<int>{};
  upgrader_->start(fds, stats_fds, cfg().server.graceful_timeout);
}

bool Arbiter::on_upgrade_exit(pid_t pid, int status) {
  return upgrader_ && upgrader_->on_child_exit(pid, status);
}

void Arbiter::announce_if_all_ready() {
  // All of them, not the first: the old master's workers start draining at once, and the
  // new master must carry the whole load by then.
  if (!on_serving_ || state_ != MasterState::kRunning) return;
  int ready = 0;
  for (WorkerProcess* w : table_.all()) {
    if (w->active() && w->ready_at > 0) ++ready;
  }
  if (ready < target_workers_) return;
  std::function<void()> hook = std::move(on_serving_);
  on_serving_ = nullptr;
  hook();
}

void Arbiter::hand_over(pid_t new_master) {
  // The sockets and their files are the new master's now, and so is the service.
  for (const auto& l : reload_.listeners().current()) l->unix_path.clear();
  if (stats_) stats_->hand_over();
  notify_systemd("MAINPID=" + std::to_string(new_master));
  silence_systemd_notify();
  if (on_handover_) on_handover_();
  handed_over_ = true;
  on_event(Event::kTerm);
}

}  // namespace aiowsgi::master
