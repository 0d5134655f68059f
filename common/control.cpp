#include "common/control.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <utility>

namespace aiowsgi {

Result<ControlPair> make_control_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return Result<ControlPair>::error(Status::Io("socketpair(control)", errno));
  }
  ControlPair pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
  int flags = ::fcntl(pair.master_end.get(), F_GETFL);
  if (flags < 0 || ::fcntl(pair.master_end.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return Result<ControlPair>::error(Status::Io("fcntl(control, O_NONBLOCK)", errno));
  }
  return Result<ControlPair>::ok(std::move(pair));
}

Status send_message(int fd, const ControlMessage& msg) {
  for (;;) {
    ssize_t n = ::send(fd, &msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof msg)) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    // SEQPACKET sends whole datagrams or fails, so a short count cannot happen; report it
    // anyway rather than pretend the message went out.
    return Status::Io(std::string("send control message (") + control_type_name(msg.type) + ")",
                      n < 0 ? errno : EMSGSIZE);
  }
}

Status send_control(int fd, ControlType type, int worker_id) {
  ControlMessage m;
  m.type = type;
  m.worker_id = static_cast<uint32_t>(worker_id);
  return send_message(fd, m);
}

Status send_drain(int fd, int worker_id, DrainReason reason) {
  ControlMessage m;
  m.type = ControlType::kDrain;
  m.worker_id = static_cast<uint32_t>(worker_id);
  m.drain_reason = reason;
  return send_message(fd, m);
}

RecvResult recv_control(int fd, ControlMessage* msg) {
  for (;;) {
    // One byte more than a message, so an over-long datagram shows up as MSG_TRUNC/size.
    alignas(ControlMessage) unsigned char buf[sizeof(ControlMessage) + 1];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof(ControlMessage))) {
      std::memcpy(msg, buf, sizeof(ControlMessage));
      return RecvResult::kMessage;
    }
    if (n == 0) return RecvResult::kClosed;
    if (n > 0) continue;  // wrong size: not ours, skip it
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::kAgain;
    if (errno == ECONNRESET) return RecvResult::kClosed;
    return RecvResult::kError;
  }
}

const char* control_type_name(ControlType type) {
  switch (type) {
    case ControlType::kReady:
      return "ready";
    case ControlType::kHeartbeat:
      return "heartbeat";
    case ControlType::kAppLoadError:
      return "app-load-error";
    case ControlType::kBootError:
      return "boot-error";
    case ControlType::kRetiring:
      return "retiring";
    case ControlType::kWatchFiles:
      return "watch-files";
    case ControlType::kDrain:
      return "drain";
    case ControlType::kStop:
      return "stop";
    case ControlType::kReopenLogs:
      return "reopen-logs";
  }
  return "unknown";
}

const char* drain_reason_name(DrainReason reason) {
  return reason == DrainReason::kRestart ? "restart" : "shutdown";
}

}  // namespace aiowsgi
