// Upgrade: USR2 replaces the running master by the installed binary without closing a listen
// socket. The old master forks; the child execs the path the master was started as (resolved
// at start, since a package upgrade replaces that file) with the same arguments, the listen
// sockets passed as systemd's LISTEN_FDS passes them, and one end of a socketpair as
// AIOWSGI_UPGRADE_FD. The [stats] listen and metrics sockets follow the listen sockets, their
// fd numbers in AIOWSGI_STATS_FDS, so the new master serves them without binding an address
// the old one still holds. The new master writes one byte on it once all its workers are ready;
// the old master then unlocks the pidfile (left in place), closes the channel (the new
// master's cue to take the pidfile over) and drains its workers as on TERM. A socketpair, not a
// signal, because it tells failure apart by itself: EOF or the child's exit before the byte means
// the upgrade failed and the old master serves on, with no pid to trust. Master only; no Python.
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace aiowsgi::master {

// The old master's side of one upgrade.
enum class UpgradeState {
  kIdle,        // no upgrade under way; USR2 starts one
  kStarting,    // the new master runs but has not said it is ready
  kAbandoned,   // it failed or timed out and was told to stop; not reaped yet
  kHandedOver,  // the new master serves; this one drains and exits
};
enum class UpgradeEvent { kRequested, kReady, kFailed, kChildReaped };

// Pure transition function (tests walk it without forking).
UpgradeState next_upgrade_state(UpgradeState s, UpgradeEvent e);

// Resolves argv[0] against the current directory and PATH, and keeps it, the arguments and
// the directory for a later upgrade. Call once at start, before anything changes directory.
void remember_invocation(int argc, char** argv);

class Upgrader {
 public:
  // |on_handover| runs once the new master is ready: the caller unlocks the pidfile and
  // starts draining. The channel is closed after it returns.
  Upgrader(struct ev_loop* loop, std::function<void(pid_t)> on_handover);
  ~Upgrader();
  Upgrader(const Upgrader&) = delete;
  Upgrader& operator=(const Upgrader&) = delete;

  // USR2: starts the new master with |listen_fds| (as LISTEN_FDS) and |stats_fds| (the
  // [stats] listening sockets, as AIOWSGI_STATS_FDS) unless an upgrade is under way (logged
  // and ignored). It has |timeout| seconds to become ready, else it is sent SIGTERM.
  void start(const std::vector<int>& listen_fds, const std::vector<int>& stats_fds, double timeout);
  // The old master is stopping (TERM, INT, QUIT) before the new one serves: it is told to
  // stop too, with |why| logged. A no-op unless an upgrade is starting.
  void cancel(const std::string& why) { fail(why); }
  // A reaped child: true when it was the new master (then it is handled here).
  bool on_child_exit(pid_t pid, int status);
  UpgradeState state() const { return state_; }

 private:
  static void channel_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void timeout_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
  void on_channel();
  void fail(const std::string& why);
  void stop_watchers();

  struct ev_loop* loop_;
  std::function<void(pid_t)> on_handover_;
  UpgradeState state_ = UpgradeState::kIdle;
  pid_t child_ = -1;
  UniqueFd channel_;
  ev_io channel_watcher_{};
  ev_timer timeout_{};
};

// Parses AIOWSGI_STATS_FDS: comma-separated fd numbers, each at least 3 and listed once
// ("5,6"; "" is none). False, with |fds| cleared, on anything else.
bool parse_fd_list(std::string_view text, std::vector<int>* fds);

// The new master's side: the stats sockets the old master passed (AIOWSGI_STATS_FDS, unset
// here so that no worker or app takes them), made close-on-exec and non-blocking at once.
// Each fd that is not open is skipped; a malformed value is logged and gives none. The
// caller owns the result; StatsServer::start() adopts them by address and closes the rest.
std::vector<UniqueFd> take_inherited_stats_fds();

// The new master's side: the channel fd from AIOWSGI_UPGRADE_FD (unset here), or -1.
int take_upgrade_channel();
// Tells the old master over |fd| that this one serves, then waits (up to |wait| seconds) for
// it to close the channel, which it does once it has unlocked the pidfile. Closes |fd|.
// False when the old master no longer listens (it abandoned the upgrade or exited): this
// master must then stop, or two would serve.
bool announce_ready(int fd, double wait);

}  // namespace aiowsgi::master
