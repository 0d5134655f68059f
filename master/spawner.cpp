#include "master/spawner.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <exception>

#include "common/exit_codes.h"
#include "common/log.h"
#include "common/status.h"

namespace aiowsgi::master {

Result<pid_t> Spawner::spawn(ChildSetup& setup) {
  log::flush();
  pid_t pid = ::fork();
  if (pid == 0) run_child(setup);
  if (pid < 0) return Result<pid_t>::error(Status::Io("fork", errno));
  return Result<pid_t>::ok(pid);
}

void Spawner::run_child(ChildSetup& setup) noexcept {
  // Order matters: the handlers libev installed would swallow these signals and write into
  // a pipe shared with the master; reset them, unblock the mask, then drop the inherited
  // loop (its epoll instance is shared with the master) without ever running it.
  for (int sig : kMasterSignals) ::signal(sig, SIG_DFL);
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  ev_loop_destroy(loop_);
  // The child never runs the destructors of the master's owners of these fds: it _exits.
  for (int fd : setup.close_first) ::close(fd);

  int code = kExitBootError;
  try {
    log::set_process_name(setup.process_name);
    WorkerContext& ctx = setup.context;
    ctx.close_fds.insert(ctx.close_fds.end(), close_in_workers_.begin(), close_in_workers_.end());
    if (setup.in_child) setup.in_child(&ctx);
    code = setup.main ? setup.main(ctx) : worker_main_(ctx);
  } catch (...) {
    code = kExitBootError;
  }
  ::_exit(code);
}

}  // namespace aiowsgi::master
