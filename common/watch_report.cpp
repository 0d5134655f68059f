#include "common/watch_report.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

namespace aiowsgi {

namespace {

bool acceptable_path(std::string_view p) {
  if (p.empty() || p.front() != '/' || p.size() > kMaxWatchPath) return false;
  for (unsigned char c : p) {
    if (c < 0x20 || c == 0x7f) return false;  // NUL included: it would end the path early
  }
  return true;
}

}  // namespace

std::vector<std::string> pack_watch_payloads(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  std::string cur;
  for (const std::string& p : paths) {
    if (!acceptable_path(p)) continue;
    if (cur.size() + p.size() + 1 > kMaxWatchPayload) {
      out.push_back(std::move(cur));
      cur.clear();
    }
    cur.append(p);
    cur.push_back('\0');
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

int send_watch_report(int fd, int worker_id, std::string_view payload) {
  if (payload.size() > kMaxWatchPayload) return EMSGSIZE;
  ControlMessage m;
  m.type = ControlType::kWatchFiles;
  m.worker_id = static_cast<uint32_t>(worker_id);
  m.requests = payload.size();  // a consistency check for the reader
  iovec iov[2] = {{&m, sizeof m}, {const_cast<char*>(payload.data()), payload.size()}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  for (;;) {
    ssize_t n = ::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof m + payload.size())) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EMSGSIZE;
  }
}

RecvResult recv_control_or_files(int fd, ControlMessage* msg, std::string* payload) {
  // One byte more than the largest datagram we accept, so an over-long one is seen. Static:
  // the master is single-threaded and this is too big for a comfortable stack frame.
  alignas(ControlMessage) static unsigned char buf[sizeof(ControlMessage) + kMaxWatchPayload + 1];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return RecvResult::kClosed;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::kAgain;
      if (errno == ECONNRESET) return RecvResult::kClosed;
      return RecvResult::kError;
    }
    size_t len = static_cast<size_t>(n);
    if (len < sizeof(ControlMessage) || len > sizeof(ControlMessage) + kMaxWatchPayload)
      continue;  // not ours: skip it
    std::memcpy(msg, buf, sizeof(ControlMessage));
    size_t extra = len - sizeof(ControlMessage);
    bool is_report = msg->type == ControlType::kWatchFiles;
    if (is_report != (extra > 0) || (is_report && msg->requests != extra)) continue;
    payload->assign(reinterpret_cast<const char*>(buf) + sizeof(ControlMessage), extra);
    return RecvResult::kMessage;
  }
}

std::vector<std::string> parse_watch_payload(std::string_view payload, size_t* rejected) {
  std::vector<std::string> out;
  size_t bad = 0;
  while (!payload.empty()) {
    size_t nul = payload.find('\0');
    if (nul == std::string_view::npos) {
      ++bad;  // truncated: the last path has no end
      break;
    }
    std::string_view p = payload.substr(0, nul);
    payload.remove_prefix(nul + 1);
    if (acceptable_path(p)) {
      out.emplace_back(p);
    } else {
      ++bad;
    }
  }
  if (rejected) *rejected = bad;
  return out;
}

}  // namespace aiowsgi
