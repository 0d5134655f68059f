#include "master/systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <string>
#include <utility>

#include "common/unique_fd.h"

namespace aiowsgi::master {
namespace {

// The notification socket, set once by init_systemd_notify() in the master's main thread
// before any event runs; the master is single-threaded, so no locking.
struct NotifyTarget {
  UniqueFd fd;
  sockaddr_un addr{};
  socklen_t len = 0;
  std::string path;  // as $NOTIFY_SOCKET gave it
};
NotifyTarget& notify_target() {
  static NotifyTarget target;
  return target;
}

// SD_LISTEN_FDS_START in sd-daemon.h: passed sockets start right after stdin/out/err.
constexpr int kListenFdsStart = 3;

bool parse_int(const char* text, long* out) {
  if (text == nullptr || *text == '\0') return false;
  const char* end = text + strlen(text);
  auto [p, ec] = std::from_chars(text, end, *out);
  return ec == std::errc() && p == end;
}

bool same_address(const sockaddr_storage& local, socklen_t local_len, const SocketAddress& want) {
  const sockaddr_storage& w = want.storage;
  if (local.ss_family != w.ss_family) return false;
  switch (local.ss_family) {
    case AF_INET: {
      const auto& a = reinterpret_cast<const sockaddr_in&>(local);
      const auto& b = reinterpret_cast<const sockaddr_in&>(w);
      return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
    }
    case AF_INET6: {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(local);
      const auto& b = reinterpret_cast<const sockaddr_in6&>(w);
      return a.sin6_port == b.sin6_port &&
             memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr) == 0 &&
             a.sin6_scope_id == b.sin6_scope_id;
    }
    case AF_UNIX: {
      // The kernel may or may not count the trailing NUL of a path in the length, so compare
      // the path bytes rather than the lengths.
      const auto& a = reinterpret_cast<const sockaddr_un&>(local);
      const auto& b = reinterpret_cast<const sockaddr_un&>(w);
      const size_t off = offsetof(sockaddr_un, sun_path);
      std::string_view pa(a.sun_path, local_len > off ? local_len - off : 0);
      std::string_view pb(b.sun_path, want.length > off ? want.length - off : 0);
      if (!pa.empty() && pa[0] != '\0') pa = pa.substr(0, strnlen(pa.data(), pa.size()));
      if (!pb.empty() && pb[0] != '\0') pb = pb.substr(0, strnlen(pb.data(), pb.size()));
      return !pa.empty() && pa == pb;
    }
    default:
      return false;
  }
}

// An inherited fd must be a listening stream socket: systemd also passes datagram sockets,
// FIFOs and accepted connections (Accept=yes), none of which the workers could accept() on.
Status check_inherited(int fd, sockaddr_storage* local, socklen_t* local_len) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return Status::Io("socket activation: inherited fd " + std::to_string(fd) + " is not a socket",
                      errno);
  }
  int listening = 0;
  len = sizeof listening;
  if (type != SOCK_STREAM || ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
      !listening) {
    return Status::Config("socket activation: inherited fd " + std::to_string(fd) +
                          " is not a listening stream socket (use ListenStream= and Accept=no)");
  }
  *local_len = sizeof *local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(local), local_len) != 0) {
    return Status::Io("socket activation: getsockname on fd " + std::to_string(fd), errno);
  }
  // systemd hands sockets over blocking and inheritable; the workers need non-blocking ones,
  // and the app's subprocesses must not inherit them (like the sockets we bind ourselves).
  int fl = ::fcntl(fd, F_GETFL);
  int fdfl = ::fcntl(fd, F_GETFD);
  if (fl < 0 || fdfl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
      ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0) {
    return Status::Io("socket activation: fcntl on fd " + std::to_string(fd), errno);
  }
  return Status::Ok();
}

}  // namespace

// --- readiness notification ------------------------------------------------------------------

void init_systemd_notify() {
  NotifyTarget& t = notify_target();
  t.fd.reset();
  t.len = 0;
  t.path.clear();
  const char* path = getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return;
  std::string p(path);
  unsetenv("NOTIFY_SOCKET");
  if ((p[0] != '/' && p[0] != '@') || p.size() >= sizeof t.addr.sun_path) {
    spdlog::warn("NOTIFY_SOCKET={} is not a usable unix socket address; not notifying", p);
    return;
  }
  t.addr.sun_family = AF_UNIX;
  memcpy(t.addr.sun_path, p.data(), p.size());
  if (p[0] == '@') t.addr.sun_path[0] = '\0';  // Linux abstract namespace
  t.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size() + (p[0] == '/'));
  t.fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!t.fd) {
    spdlog::warn("cannot create the NOTIFY_SOCKET socket: {}", errno_string(errno));
    return;
  }
  t.path = p;
  spdlog::debug("notifying the service manager at {}", p);
}

std::string systemd_notify_socket() { return notify_target().path; }

void silence_systemd_notify() { notify_target().fd.reset(); }

void notify_systemd(std::string_view state) {
  NotifyTarget& t = notify_target();
  if (!t.fd || state.empty()) return;
  ssize_t n = ::sendto(t.fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&t.addr), t.len);
  if (n < 0) spdlog::debug("sd_notify: {}", errno_string(errno));
}

std::string systemd_state_for(MasterState from, MasterState to) {
  const bool was_stopping =
      from == MasterState::kStopping || from == MasterState::kKilling || from == MasterState::kDone;
  switch (to) {
    case MasterState::kRunning:
      if (from == MasterState::kStarting) {
        return "READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(getpid());
      }
      if (from == MasterState::kReloading) return "READY=1\nSTATUS=serving";
      return "";
    case MasterState::kReloading:
      return "RELOADING=1\nSTATUS=reloading";
    case MasterState::kStopping:
    case MasterState::kKilling:
      return was_stopping ? "" : "STOPPING=1\nSTATUS=stopping";
    case MasterState::kStarting:
    case MasterState::kDone:
      return "";
  }
  return "";
}

void notify_systemd_transition(MasterState from, MasterState to) {
  std::string state = systemd_state_for(from, to);
  if (state.empty()) return;
  if (to == MasterState::kReloading) {
    // systemd 253+ (Type=notify-reload) matches the reload to the time it was asked for.
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t usec =
        static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
    state += "\nMONOTONIC_USEC=" + std::to_string(usec);
  }
  notify_systemd(state);
}

// --- socket activation -----------------------------------------------------------------------

std::vector<int> take_systemd_listen_fds() {
  const char* pid_text = getenv("LISTEN_PID");
  const char* fds_text = getenv("LISTEN_FDS");
  std::vector<int> fds;
  if (fds_text != nullptr) {
    long pid = 0;
    long n = 0;
    if (!parse_int(pid_text, &pid) || !parse_int(fds_text, &n) || n < 0 || n > 1024) {
      spdlog::warn("ignoring malformed socket activation variables LISTEN_PID={} LISTEN_FDS={}",
                   pid_text ? pid_text : "(unset)", fds_text);
    } else if (pid != getpid()) {
      spdlog::debug("LISTEN_FDS is for pid {}, not us; ignored", pid);
    } else {
      for (int i = 0; i < n; ++i) fds.push_back(kListenFdsStart + i);
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return fds;
}

Result<ListenerSet> adopt_listeners(const config::ServerConfig& server,
                                    const std::vector<int>& inherited) {
  struct Candidate {
    UniqueFd fd;
    sockaddr_storage local{};
    socklen_t local_len = 0;
  };
  std::vector<Candidate> candidates;
  for (int fd : inherited) {
    Candidate c;
    c.fd.reset(fd);
    if (Status s = check_inherited(fd, &c.local, &c.local_len); !s.ok()) {
      return Result<ListenerSet>::error(std::move(s));
    }
    candidates.push_back(std::move(c));
  }
  // Each configured address takes the inherited socket bound to it, at most once.
  auto inherited_for = [&](const ListenAddress& a) -> std::shared_ptr<Listener> {
    for (Candidate& c : candidates) {
      if (c.fd && same_address(c.local, c.local_len, a.address)) {
        auto l = std::make_shared<Listener>();
        l->fd = std::move(c.fd);
        l->name = a.address.text;
        l->bound_name = format_sockaddr(reinterpret_cast<const sockaddr*>(&c.local), c.local_len);
        l->uwsgi = a.uwsgi;
        l->tls = a.address.tls;
        return l;
      }
    }
    return nullptr;
  };
  Result<ListenerSet> set = ListenerSet::open(server, inherited_for, ", from the service manager");
  if (!set.ok()) return set;
  for (const Candidate& c : candidates) {
    if (!c.fd) continue;
    std::string where = format_sockaddr(reinterpret_cast<const sockaddr*>(&c.local), c.local_len);
    return Result<ListenerSet>::error(Status::Config(
        "socket activation: inherited socket " + where + " (fd " + std::to_string(c.fd.get()) +
        ") matches no [server] listen or uwsgi_listen address"));
  }
  return set;
}

bool socket_listens_on(int fd, const SocketAddress& want) {
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    return false;
  }
  len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    return false;
  }
  sockaddr_storage local{};
  len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  return same_address(local, len, want);
}

Result<ListenerSet> open_listeners(const config::ServerConfig& server) {
  std::vector<int> inherited = take_systemd_listen_fds();
  if (inherited.empty()) return ListenerSet::open(server);
  spdlog::info("socket activation: {} inherited socket{}", inherited.size(),
               inherited.size() == 1 ? "" : "s");
  return adopt_listeners(server, inherited);
}

}  // namespace aiowsgi::master
