#include "worker/control_link.h"

#include <spdlog/spdlog.h>

#include "common/control.h"
#include "common/log.h"
#include "worker/access_log.h"

namespace aiowsgi::worker {

namespace {
void send_type(int fd, ControlType type, int worker_id, uint64_t requests = 0, uint64_t busy = 0,
               uint64_t oldest_ms = 0) noexcept {
  if (fd < 0) return;
  ControlMessage m;
  m.type = type;
  m.worker_id = static_cast<uint32_t>(worker_id);
  m.requests = requests;
  m.busy_cores = busy;
  m.oldest_request_ms = oldest_ms;
  Status s = send_message(fd, m);
  if (!s.ok() && type != ControlType::kHeartbeat)
    spdlog::warn("control message to the master failed: {}", s.message());
}
}  // namespace

bool ControlLink::receive(int fd, Command* cmd, DrainReason* reason) noexcept {
  if (fd < 0) return false;
  ControlMessage m;
  switch (recv_control(fd, &m)) {
    case RecvResult::kAgain:
      return false;
    case RecvResult::kClosed:
    case RecvResult::kError:
      *cmd = Command::kMasterGone;
      return true;
    case RecvResult::kMessage:
      break;
  }
  switch (m.type) {
    case ControlType::kDrain:
      *cmd = Command::kDrain;
      *reason =
          m.drain_reason == DrainReason::kRestart ? DrainReason::kRestart : DrainReason::kShutdown;
      break;
    case ControlType::kStop:
      *cmd = Command::kStop;
      break;
    case ControlType::kReopenLogs:
      *cmd = Command::kReopenLogs;
      break;
    default:
      *cmd = Command::kNone;
      break;
  }
  return true;
}

void ControlLink::ready(int fd, int worker_id) noexcept {
  send_type(fd, ControlType::kReady, worker_id);
}
void ControlLink::app_load_error(int fd, int worker_id) noexcept {
  send_type(fd, ControlType::kAppLoadError, worker_id);
}
void ControlLink::boot_error(int fd, int worker_id) noexcept {
  send_type(fd, ControlType::kBootError, worker_id);
}
void ControlLink::heartbeat(int fd, int worker_id, uint64_t requests, uint64_t busy_cores,
                            uint64_t oldest_request_ms) noexcept {
  send_type(fd, ControlType::kHeartbeat, worker_id, requests, busy_cores, oldest_request_ms);
}
void ControlLink::retiring(int fd, int worker_id, uint64_t requests) noexcept {
  send_type(fd, ControlType::kRetiring, worker_id, requests);
}
void ControlLink::reopen_logs() noexcept {
  Status s = log::reopen();
  if (!s.ok()) spdlog::error("reopening the log file failed: {}", s.message());
  if (Status a = access_log::reopen(); !a.ok()) {
    spdlog::error("reopening the access log failed: {}", a.message());
  } else if (s.ok()) {
    spdlog::info("worker log files reopened");
  }
}

}  // namespace aiowsgi::worker
