#include "common/preload_channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

namespace aiowsgi {

Status send_preload(int fd, const PreloadMessage& msg, int pass_fd) {
  PreloadMessage copy = msg;
  iovec iov{&copy, sizeof copy};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    std::memset(control, 0, sizeof control);
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof copy)) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    return Status::Io(std::string("send preload message (") + preload_type_name(msg.type) + ")",
                      n < 0 ? errno : EMSGSIZE);
  }
}

RecvResult recv_preload(int fd, PreloadMessage* msg, UniqueFd* passed) {
  for (;;) {
    // One byte more than a message, so an over-long datagram shows up by its size.
    alignas(PreloadMessage) unsigned char buf[sizeof(PreloadMessage) + 1];
    iovec iov{buf, sizeof buf};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::kAgain;
      if (errno == ECONNRESET) return RecvResult::kClosed;
      return RecvResult::kError;
    }
    // Take ownership of every descriptor that came along, wanted or not, so none leaks.
    UniqueFd got;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int one;
        std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (!got) {
          got.reset(one);
        } else {
          ::close(one);
        }
      }
    }
    if (n == 0) return RecvResult::kClosed;
    if (n != static_cast<ssize_t>(sizeof(PreloadMessage))) continue;  // not ours: skip it
    std::memcpy(msg, buf, sizeof(PreloadMessage));
    if (passed) *passed = std::move(got);
    return RecvResult::kMessage;
  }
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the read report the problem
  }
}

const char* preload_type_name(PreloadType type) {
  switch (type) {
    case PreloadType::kReady:
      return "ready";
    case PreloadType::kForked:
      return "forked";
    case PreloadType::kForkFailed:
      return "fork-failed";
    case PreloadType::kFork:
      return "fork";
  }
  return "unknown";
}

}  // namespace aiowsgi
