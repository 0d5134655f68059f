// Preloader: the master's side of [server] preload (SPEC.md "Preload"). It forks one preload
// process per generation (the child runs worker::run_preload), learns over the preload
// channel when the app is imported, and asks that process for each worker of the
// generation. Workers arrive re-parented to the master (PR_SET_CHILD_SUBREAPER), which
// supervises them exactly like workers it forked itself. Master only; no Python.
//
// A fork request never blocks the master's loop: the answer comes on the channel's watcher,
// or the request times out on a timer (a stopped or wedged preload process must not stop
// signal handling, reaping or the stats endpoints). Outcomes are queued for the Arbiter.
//
// At most two preload processes live at once: the serving one, which spawns replacements,
// and during a reload the booting one, which imports the new code and spawns the new
// generation. A reload that completes retires the old one (promote); one that fails stops
// the booting one (discard_booting).
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/preload_channel.h"
#include "common/result.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::master {

// A fork request sent and not answered yet. The preload process serves requests one at a
// time, in order, so its answers come in this order too.
struct PendingFork {
  uint64_t serial = 0;  // the caller's name for the request (the worker's fork serial)
  uint32_t worker_id = 0;
  double deadline = 0;  // ev_now() past which the preload process is taken for wedged
};

// What became of a fork request: the worker's pid, or why there is none.
struct ForkOutcome {
  uint64_t serial = 0;
  pid_t pid = -1;  // > 0 when forked
  Status why;      // not ok when pid <= 0
};

struct PreloadProcess {
  pid_t pid = -1;
  UniqueFd channel;  // master end; -1 once the peer closed it
  ev_io io{};        // watches |channel| while it is open
  bool ready = false;
  bool booting = false;   // a reload's; becomes the serving one on promote()
  bool stopping = false;  // asked to exit; its death is expected
  double started_at = 0;
  std::deque<PendingFork> forks;  // requests sent, oldest first
  void* owner = nullptr;          // the Preloader, for the libev callback
};

class Preloader {
 public:
  // |on_ready| runs from the loop when a preload process has imported the app (|booting|:
  // it is a reload's). |on_files| gets the [app] reload watch reports (common/watch_report.h)
  // it sends after the import, failed or not, with a name for the log. |on_forks| runs from
  // the loop (the channel's watcher, the fork timer) when fork outcomes are waiting in
  // take_fork_outcomes(); outcomes queued by the calls below wait for the caller to take them.
  using FilesCallback = std::function<void(const std::string& payload, const std::string& who)>;
  Preloader(struct ev_loop* loop, std::function<void(bool booting)> on_ready,
            FilesCallback on_files = nullptr, std::function<void()> on_forks = nullptr);
  ~Preloader();
  Preloader(const Preloader&) = delete;
  Preloader& operator=(const Preloader&) = delete;

  // Forks the preload process (the Arbiter's Spawner, with the preload function): gets the
  // child's end of the channel, and the master's end, which the child must close.
  using ForkChild = std::function<Result<pid_t>(int child_end, int master_end)>;

  // Starts a preload process: the serving one (start-up, or a replacement after it died), or
  // with |booting| the next generation's. Io status when the channel or fork fails.
  Status start(bool booting, const ForkChild& fork_child);

  // The serving process (spawns replacements) and a reload's booting one; nullptr when none
  // was started. Either may not be ready yet.
  PreloadProcess* serving() const { return serving_.get(); }
  PreloadProcess* booting() const { return booting_.get(); }

  // Asks |p| (ready) for worker |request.worker_id| without waiting: |control_fd| (the
  // worker's end of its control pipe) is passed along, and the caller keeps and closes its
  // copy. The outcome, named |serial|, comes later through take_fork_outcomes(): the pid, or
  // a failure (the fork failed, the process died or was stopped, or it did not answer within
  // fork_timeout(), in which case it is killed). A status that is not ok here means the
  // request was not sent, and no outcome follows.
  Status request_fork(PreloadProcess* p, const PreloadMessage& request, int control_fd,
                      uint64_t serial);
  // The outcomes of fork requests since the last call, oldest first.
  std::vector<ForkOutcome> take_fork_outcomes() { return std::exchange(outcomes_, {}); }
  // Whether a fork request is unanswered, or its outcome not taken yet.
  bool fork_pending() const;

  // A reaped child: if it was a preload process, forgets it and returns true with what it
  // was in *was (copied out before it is forgotten).
  bool on_child(pid_t pid, PreloadProcess* was);

  // A reload completed: the booting process becomes the serving one; the previous serving
  // one is told to exit (the master closes its channel and sends SIGTERM).
  void promote();
  // A reload failed: the booting process is stopped; the serving one stays.
  void discard_booting();
  // Shutdown: every preload process gets |sig|.
  void stop_all(int sig);

  bool empty() const { return !serving_ && !booting_ && retired_.empty(); }
  // The master's channel ends, which every forked child closes (a preload process must see
  // the master's end close when the master goes).
  void channel_fds(std::vector<int>* out) const;

  // How long a preload process may take to answer a fork request (a fork returns in a few
  // ms even for a large app); tests shorten it.
  static constexpr double kForkTimeoutSeconds = 10.0;
  double fork_timeout() const { return fork_timeout_; }
  void set_fork_timeout(double seconds) { fork_timeout_ = seconds; }

 private:
  static void channel_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void fork_timer_cb(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
  void on_channel(PreloadProcess* p);
  void on_fork_reply(PreloadProcess* p, const PreloadMessage& m);
  void on_fork_timer();
  void arm_fork_timer();
  // Ends every request |p| has pending with |why|.
  void fail_forks(PreloadProcess* p, const Status& why);
  void stop(PreloadProcess* p, int sig);
  // Stops watching |p|'s channel and closes it; its pending requests fail.
  void close_channel(PreloadProcess* p);

  struct ev_loop* loop_;
  std::function<void(bool)> on_ready_;
  FilesCallback on_files_;
  std::function<void()> on_forks_;
  double fork_timeout_ = kForkTimeoutSeconds;
  ev_timer fork_timer_{};              // the oldest pending request's deadline
  std::vector<ForkOutcome> outcomes_;  // not taken yet
  std::unique_ptr<PreloadProcess> serving_;
  std::unique_ptr<PreloadProcess> booting_;
  std::vector<std::unique_ptr<PreloadProcess>> retired_;  // told to exit, not reaped yet
};

}  // namespace aiowsgi::master
