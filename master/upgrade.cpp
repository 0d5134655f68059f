#include "master/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/guarded.h"
#include "common/status.h"
#include "master/spawner.h"
#include "master/systemd.h"

extern char** environ;

namespace aiowsgi::master {
namespace {

constexpr const char* kChannelVar = "AIOWSGI_UPGRADE_FD";
constexpr const char* kStatsFdsVar = "AIOWSGI_STATS_FDS";
constexpr char kReadyByte = 'R';

struct Invocation {
  std::string binary;  // absolute path of the installed binary, "" when unresolved
  std::vector<std::string> args;
  std::string cwd;
};
Invocation& invocation() {
  static Invocation inv;
  return inv;
}

std::string resolve_binary(const std::string& argv0, const std::string& cwd) {
  if (argv0.find('/') != std::string::npos) {
    return argv0[0] == '/' ? argv0 : cwd + "/" + argv0;
  }
  const char* path = getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + argv0;
    if (candidate[0] != '/') candidate = cwd + "/" + candidate;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return "";
    rest.remove_prefix(colon + 1);
  }
}

bool starts_with_var(const char* entry, std::string_view name) {
  return strncmp(entry, name.data(), name.size()) == 0 && entry[name.size()] == '=';
}

// Writes |v| in decimal after |prefix| into |buf| without allocating (runs after fork).
void format_pid(char* buf, size_t prefix, pid_t v) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 15);
  for (int i = 0; i < n; ++i) buf[prefix + i] = digits[n - 1 - i];
  buf[prefix + n] = '\0';
}

}  // namespace

UpgradeState next_upgrade_state(UpgradeState s, UpgradeEvent e) {
  switch (s) {
    case UpgradeState::kIdle:
      return e == UpgradeEvent::kRequested ? UpgradeState::kStarting : s;
    case UpgradeState::kStarting:
      if (e == UpgradeEvent::kReady) return UpgradeState::kHandedOver;
      if (e == UpgradeEvent::kFailed) return UpgradeState::kAbandoned;
      if (e == UpgradeEvent::kChildReaped) return UpgradeState::kIdle;
      return s;  // a second USR2 is ignored
    case UpgradeState::kAbandoned:
      return e == UpgradeEvent::kChildReaped ? UpgradeState::kIdle : s;
    case UpgradeState::kHandedOver:
      return s;  // this master exits
  }
  return s;
}

void remember_invocation(int argc, char** argv) {
  Invocation& inv = invocation();
  char cwd[PATH_MAX];
  inv.cwd = ::getcwd(cwd, sizeof cwd) ? cwd : "/";
  inv.args.assign(argv, argv + argc);
  inv.binary = argc > 0 ? resolve_binary(argv[0], inv.cwd) : "";
}

Upgrader::Upgrader(struct ev_loop* loop, std::function<void(pid_t)> on_handover)
    : loop_(loop), on_handover_(std::move(on_handover)) {
  ev_init(&channel_watcher_, &Upgrader::channel_cb);
  channel_watcher_.data = this;
  ev_init(&timeout_, &Upgrader::timeout_cb);
  timeout_.data = this;
}

Upgrader::~Upgrader() { stop_watchers(); }

void Upgrader::stop_watchers() {
  ev_io_stop(loop_, &channel_watcher_);
  ev_timer_stop(loop_, &timeout_);
}

void Upgrader::start(const std::vector<int>& listen_fds, const std::vector<int>& stats_fds,
                     double timeout) {
  if (state_ != UpgradeState::kIdle) {
    spdlog::warn("SIGUSR2 ignored: an upgrade is already under way (new master pid {})", child_);
    return;
  }
  const Invocation& inv = invocation();
  if (inv.binary.empty() || ::access(inv.binary.c_str(), X_OK) != 0) {
    spdlog::error("SIGUSR2: upgrade failed: cannot execute {}{}; this master keeps serving",
                  inv.binary.empty() ? "the binary (argv[0] was not found at start)" : inv.binary,
                  inv.binary.empty() ? "" : std::string(": ") + strerror(errno));
    return;
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    spdlog::error("SIGUSR2: upgrade failed: socketpair: {}", strerror(errno));
    return;
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);

  // Everything the child needs is built here: after fork it only moves fds and execs.
  const int n = static_cast<int>(listen_fds.size());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (starts_with_var(*e, "LISTEN_FDS") || starts_with_var(*e, "LISTEN_PID") ||
        starts_with_var(*e, "LISTEN_FDNAMES") || starts_with_var(*e, "NOTIFY_SOCKET") ||
        starts_with_var(*e, kChannelVar) || starts_with_var(*e, kStatsFdsVar)) {
      continue;
    }
    env.emplace_back(*e);
  }
  // fds 3.. in the child: the listen sockets (LISTEN_FDS counts only those, as systemd's
  // do), then the stats sockets, then the channel.
  const int m = static_cast<int>(stats_fds.size());
  env.push_back("LISTEN_FDS=" + std::to_string(n));
  if (m > 0) {
    std::string positions;
    for (int i = 0; i < m; ++i) positions += (i ? "," : "") + std::to_string(3 + n + i);
    env.push_back(std::string(kStatsFdsVar) + "=" + positions);
  }
  env.push_back(std::string(kChannelVar) + "=" + std::to_string(3 + n + m));
  if (std::string notify = systemd_notify_socket(); !notify.empty()) {
    env.push_back("NOTIFY_SOCKET=" + notify);
  }
  char listen_pid[32] = "LISTEN_PID=";
  const size_t prefix = strlen(listen_pid);
  std::vector<char*> envp;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(listen_pid);
  envp.push_back(nullptr);
  std::vector<std::string> args = inv.args;
  args[0] = inv.binary;
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<int> sources(listen_fds);
  sources.insert(sources.end(), stats_fds.begin(), stats_fds.end());
  sources.push_back(theirs.get());

  // Signals stay blocked from fork to the child's reset: libev's handlers, inherited, would
  // swallow a SIGTERM meant for the new master (fail() sends one) before it execs.
  sigset_t all;
  sigset_t before;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
  pid_t pid = ::fork();
  if (pid != 0) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (pid < 0) {
    spdlog::error("SIGUSR2: upgrade failed: fork: {}", strerror(errno));
    return;
  }
  if (pid == 0) {
    for (int sig : kMasterSignals) ::signal(sig, SIG_DFL);
    ::signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);  // a pending SIGTERM ends the child here
    // Move the sockets to 3.. in order: first above every target, then down. dup2 leaves
    // the copies without FD_CLOEXEC, so only these cross the exec.
    const int high = 3 + static_cast<int>(sources.size());
    std::vector<int>& moved = sources;
    for (int& fd : moved) {
      fd = ::fcntl(fd, F_DUPFD_CLOEXEC, high);
      if (fd < 0) _exit(127);
    }
    for (size_t i = 0; i < moved.size(); ++i) {
      if (::dup2(moved[i], 3 + static_cast<int>(i)) < 0) _exit(127);
    }
    format_pid(listen_pid, prefix, ::getpid());
    if (::chdir(inv.cwd.c_str()) != 0) _exit(127);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  child_ = pid;
  channel_ = std::move(ours);
  state_ = next_upgrade_state(state_, UpgradeEvent::kRequested);
  spdlog::info("SIGUSR2: upgrading: started {} as pid {}; this master serves until it is ready",
               inv.binary, pid);
  ev_io_set(&channel_watcher_, channel_.get(), EV_READ);
  ev_io_start(loop_, &channel_watcher_);
  ev_timer_set(&timeout_, timeout, 0);
  ev_timer_start(loop_, &timeout_);
}

void Upgrader::channel_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* self = static_cast<Upgrader*>(w->data);
  guarded("upgrade channel handler", [&] { self->on_channel(); });
}

void Upgrader::timeout_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<Upgrader*>(w->data);
  guarded("upgrade timer", [&] {
    self->fail(
        "the new master's workers were not ready within graceful_timeout; this master keeps "
        "serving");
  });
}

void Upgrader::on_channel() {
  char byte = 0;
  ssize_t got = ::read(channel_.get(), &byte, 1);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (got == 1 && byte == kReadyByte && state_ == UpgradeState::kStarting) {
    stop_watchers();
    state_ = next_upgrade_state(state_, UpgradeEvent::kReady);
    spdlog::info("upgrade: the new master (pid {}) serves; this master drains and exits", child_);
    on_handover_(child_);
    channel_.reset();  // the new master takes the pidfile on this EOF
    return;
  }
  // EOF before the byte: the new master is exiting; its exit status says why.
  ev_io_stop(loop_, &channel_watcher_);
}

void Upgrader::fail(const std::string& why) {
  if (state_ != UpgradeState::kStarting) return;
  stop_watchers();
  channel_.reset();
  state_ = next_upgrade_state(state_, UpgradeEvent::kFailed);
  spdlog::error("upgrade failed: {}; stopping the new master (pid {})", why, child_);
  ::kill(child_, SIGTERM);
}

bool Upgrader::on_child_exit(pid_t pid, int status) {
  if (pid != child_ || child_ < 0) return false;
  std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                      : "was killed by signal " + std::to_string(WTERMSIG(status));
  if (state_ == UpgradeState::kStarting) {
    stop_watchers();
    channel_.reset();
    spdlog::error(
        "upgrade failed: the new master (pid {}) {} before it was ready{}; this master keeps "
        "serving",
        pid, how, WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (could not exec?)" : "");
  } else {
    spdlog::info("the new master (pid {}) {}", pid, how);
  }
  if (state_ != UpgradeState::kHandedOver) {
    state_ = next_upgrade_state(state_, UpgradeEvent::kChildReaped);
    child_ = -1;
  }
  return true;
}

bool parse_fd_list(std::string_view text, std::vector<int>* fds) {
  fds->clear();
  if (text.empty()) return true;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    int v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    bool dup = std::find(fds->begin(), fds->end(), v) != fds->end();
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 3 || v > 65535 ||
        dup) {
      fds->clear();
      return false;
    }
    fds->push_back(v);
    if (comma == std::string_view::npos) return true;
    text.remove_prefix(comma + 1);
  }
}

std::vector<UniqueFd> take_inherited_stats_fds() {
  const char* text = getenv(kStatsFdsVar);
  std::vector<UniqueFd> owned;
  if (text == nullptr) return owned;
  std::vector<int> fds;
  if (!parse_fd_list(text, &fds)) spdlog::warn("ignoring malformed {}={}", kStatsFdsVar, text);
  unsetenv(kStatsFdsVar);
  for (int fd : fds) {
    // Before anything forks: the workers and the app's subprocesses must not inherit them.
    int fdfl = ::fcntl(fd, F_GETFD);
    if (fdfl < 0) {
      spdlog::debug("{}: fd {} is not open; skipped", kStatsFdsVar, fd);
      continue;
    }
    UniqueFd owner(fd);
    int fl = ::fcntl(fd, F_GETFL);
    if (::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0 || fl < 0 ||
        ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
      spdlog::debug("{}: fcntl on fd {}: {}; closed", kStatsFdsVar, fd, errno_string(errno));
      continue;
    }
    owned.push_back(std::move(owner));
  }
  return owned;
}

int take_upgrade_channel() {
  const char* text = getenv(kChannelVar);
  int fd = -1;
  if (text != nullptr) {
    char* end = nullptr;
    long v = strtol(text, &end, 10);
    if (end != text && *end == '\0' && v >= 3 && v < 65536) fd = static_cast<int>(v);
    unsetenv(kChannelVar);
  }
  if (fd >= 0 && ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) fd = -1;  // not open: no upgrade
  return fd;
}

bool announce_ready(int fd, double wait) {
  UniqueFd channel(fd);
  if (::write(channel.get(), &kReadyByte, 1) != 1) {
    spdlog::error(
        "upgrade: cannot tell the old master that this one serves ({}): it gave up "
        "the upgrade or is gone; this master stops",
        strerror(errno));
    return false;
  }
  // The old master closes its end once it has released the pidfile.
  pollfd p{channel.get(), POLLIN, 0};
  int rc = ::poll(&p, 1, static_cast<int>(wait * 1000));
  if (rc <= 0) spdlog::warn("upgrade: the old master did not answer within {} s", wait);
  return true;
}

}  // namespace aiowsgi::master
