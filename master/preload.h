// Preloader: the master's side of [server] preload (SPEC.md "Preload"). It forks one preload
// process per generation (the child runs worker::run_preload), learns over the preload
// channel when the app is imported, and asks that process for each worker of the
// generation. Workers arrive re-parented to the master (PR_SET_CHILD_SUBREAPER), which
// supervises them exactly like workers it forked itself. Master only; no Python.
//
// At most two preload processes live at once: the serving one, which spawns replacements,
// and during a reload the booting one, which imports the new code and spawns the new
// generation. A reload that completes retires the old one (promote); one that fails stops
// the booting one (discard_booting).
#pragma once

#include <ev.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/preload_channel.h"
#include "common/result.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::master {

struct PreloadProcess {
  pid_t pid = -1;
  UniqueFd channel;  // master end; -1 once the peer closed it
  ev_io io{};        // watches |channel| until kReady
  bool ready = false;
  bool booting = false;   // a reload's; becomes the serving one on promote()
  bool stopping = false;  // asked to exit; its death is expected
  double started_at = 0;
  void* owner = nullptr;  // the Preloader, for the libev callback
};

class Preloader {
 public:
  // |on_ready| runs from the loop when a preload process has imported the app (|booting|:
  // it is a reload's). |on_files| gets the [app] reload watch reports (common/watch_report.h)
  // it sends after the import, failed or not, with a name for the log.
  using FilesCallback = std::function<void(const std::string& payload, const std::string& who)>;
  Preloader(struct ev_loop* loop, std::function<void(bool booting)> on_ready,
            FilesCallback on_files = nullptr);
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

  // Asks |p| (ready) for worker |worker_id| and waits, at most kForkTimeoutSeconds, for its
  // pid. |control_fd| (the worker's end of its control pipe) is passed along. The caller
  // keeps and closes its copy. On failure the status says why; a preload process that does
  // not answer in time is killed.
  Status fork_worker(PreloadProcess* p, const PreloadMessage& request, int control_fd, pid_t* pid);

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

  static constexpr double kForkTimeoutSeconds = 10.0;

 private:
  static void channel_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  void on_channel(PreloadProcess* p);
  void stop(PreloadProcess* p, int sig);
  void close_channel(PreloadProcess* p);

  struct ev_loop* loop_;
  std::function<void(bool)> on_ready_;
  FilesCallback on_files_;
  std::unique_ptr<PreloadProcess> serving_;
  std::unique_ptr<PreloadProcess> booting_;
  std::vector<std::unique_ptr<PreloadProcess>> retired_;  // told to exit, not reaped yet
};

}  // namespace aiowsgi::master
