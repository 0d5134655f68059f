#include "worker/preload.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "common/exit_codes.h"
#include "common/log.h"
#include "common/preload_channel.h"
#include "worker/access_log.h"
#include "worker/app_output.h"
#include "worker/module_files.h"
#include "worker/python/py_ref.h"
#include "worker/python/python_module.h"
#include "worker/worker_boot.h"

namespace aiowsgi::worker {

namespace {

// The second half of a worker's start, in the grandchild of the preload process: the app is
// imported already (|app|, inherited); what must be the worker's own is made here, after
// the fork: interpreter state (locks, thread ids, random's seed), the event loop.
int run_preloaded_worker(const WorkerContext& generation, const PreloadMessage& req, int control_fd,
                         int channel_fd, PyObject* app) noexcept {
  // First: reinitialises the GIL, the import lock and threading state, and runs the
  // os.register_at_fork(after_in_child=...) hooks (random reseeds itself there).
  PyOS_AfterFork_Child();
  ::close(channel_fd);
  int code = kExitBootError;
  try {
    WorkerContext ctx;
    ctx.config = generation.config;
    ctx.worker_id = static_cast<int>(req.worker_id);
    ctx.num_workers = req.num_workers;
    ctx.sockets = generation.sockets;
    ctx.control_fd = control_fd;
    ctx.score = reinterpret_cast<WorkerScore*>(static_cast<uintptr_t>(req.score));
    ctx.board = reinterpret_cast<const StatsBoard*>(static_cast<uintptr_t>(req.board));
    log::set_process_name("worker " + std::to_string(ctx.worker_id));
    // The log file may have been rotated since the preload process opened it.
    if (log::logging_to_file()) (void)log::reopen();
    const config::Config& cfg = *ctx.config;
    if (Status s = access_log::setup(cfg.log, ctx.worker_id); !s.ok())
      spdlog::error("access log off: {}", s.message());
    // Its own pipes over fds 1 and 2 (sys.stdout and sys.stderr follow: same fds), and its
    // own reader: the preload process's is stopped, and does not exist in this process.
    if (Status s = app_output::start(cfg.log.format == "json",
                                     "worker " + std::to_string(ctx.worker_id), ctx.worker_id);
        !s.ok())
      spdlog::error("the app's output goes to the preload process's pipes: {}", s.message());
    PyRef loop = PyRef::steal(make_loop(cfg.app.loop));
    PyRef args =
        loop ? PyRef::steal(Py_BuildValue("(iiO)", ctx.worker_id, ctx.num_workers, loop.get()))
             : PyRef();
    if (!loop || !set_current_loop(loop.get()) || !call_module_helper("_bind_worker", args.get())) {
      spdlog::critical("worker {} cannot start: creating its {} loop: {}", ctx.worker_id,
                       cfg.app.loop, fetch_exception_text());
      code = kExitBootError;
    } else {
      // [app] reload: this worker reports what the preload process imported, as its own.
      ModuleFileReporter reload_reporter(ctx);
      reload_reporter.report();
      code = serve_app(ctx, loop.get(), app, reload_reporter);
    }
    finish_python();
  } catch (...) {
    code = kExitBootError;
  }
  app_output::stop();
  return code;
}

// Forks worker |req.worker_id| twice over: the intermediate child forks the worker, reports
// its pid through a pipe and exits at once, so the worker is re-parented to the nearest
// child subreaper (the master). Returns the worker's pid, or -errno.
int fork_worker(const WorkerContext& generation, const PreloadMessage& req, int control_fd,
                int channel_fd, PyObject* app) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return -errno;
  UniqueFd rd(pipe_fds[0]);
  UniqueFd wr(pipe_fds[1]);
  log::flush();  // a buffered line would be written by both processes
  // The output reader thread would not exist in the child, and could hold the log's lock
  // there forever: stopped across the fork (the app's writes wait in the pipes meanwhile).
  app_output::stop();
  PyOS_BeforeFork();
  pid_t mid = ::fork();
  if (mid == 0) {
    // The intermediate child: no Python, nothing but fork, report, exit.
    pid_t w = ::fork();
    if (w == 0) {
      ::close(rd.release());
      ::close(wr.release());
      ::_exit(run_preloaded_worker(generation, req, control_fd, channel_fd, app));
    }
    int32_t v = w > 0 ? static_cast<int32_t>(w) : -errno;
    ssize_t n;
    do {
      n = ::write(wr.get(), &v, sizeof v);
    } while (n < 0 && errno == EINTR);
    ::_exit(0);
  }
  int fork_errno = errno;
  PyOS_AfterFork_Parent();
  app_output::resume();
  if (mid < 0) return -fork_errno;
  wr.reset();
  int32_t v = -EPIPE;  // the intermediate child died before it said anything
  ssize_t n;
  do {
    n = ::read(rd.get(), &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof v)) v = -EPIPE;
  int status;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  return v;
}

// After the import: kReady, then one fork per kFork until the master closes the channel.
int serve_fork_requests(const WorkerContext& generation, int channel_fd, PyObject* app) {
  PreloadMessage ready;
  ready.type = PreloadType::kReady;
  if (Status s = send_preload(channel_fd, ready); !s.ok()) {
    spdlog::error("preload: {}", s.message());
    return kExitOk;  // the master is gone
  }
  for (;;) {
    wait_readable(channel_fd, -1);
    PreloadMessage req;
    UniqueFd control;
    RecvResult r = recv_preload(channel_fd, &req, &control);
    if (r == RecvResult::kAgain) continue;
    if (r != RecvResult::kMessage) return kExitOk;  // the master closed the channel: done
    if (req.type != PreloadType::kFork) continue;
    int v = control ? fork_worker(generation, req, control.get(), channel_fd, app) : -EBADF;
    control.reset();  // the worker has its copy
    PreloadMessage reply;
    reply.type = v > 0 ? PreloadType::kForked : PreloadType::kForkFailed;
    reply.worker_id = req.worker_id;
    reply.value = v > 0 ? v : -v;
    if (v > 0) spdlog::debug("preload: forked worker {} as pid {}", req.worker_id, v);
    if (Status s = send_preload(channel_fd, reply); !s.ok()) {
      spdlog::error("preload: {}", s.message());
      return kExitOk;
    }
  }
}

}  // namespace

int run_preload(const WorkerContext& ctx) noexcept {
  const int channel_fd = ctx.control_fd;
  try {
    reset_signals();
    // SIGUSR1 and SIGUSR2 sent to the whole service (systemctl kill) must not end this
    // process; its workers install their own handlers.
    ::signal(SIGUSR1, SIG_IGN);
    ::signal(SIGUSR2, SIG_IGN);
    for (int fd : ctx.close_fds) ::close(fd);
    log::set_process_name("preload");
    const config::Config& cfg = *ctx.config;
    // What the app prints while it is imported here is logged as the preload process's.
    app_output::StopOnExit stop_app_output;
    if (Status s = app_output::start(cfg.log.format == "json", "preload", 0); !s.ok())
      spdlog::error("the app's output goes to the master's standard streams: {}", s.message());
    for (const auto& [k, v] : cfg.app.env) setenv(k.c_str(), v.c_str(), 1);
    if (!cfg.app.chdir.empty() && chdir(cfg.app.chdir.c_str()) != 0) {
      spdlog::critical("preload: chdir {}: {}", cfg.app.chdir, errno_string(errno));
      return kExitBootError;
    }
    if (Status st = init_python(cfg); !st.ok()) {
      spdlog::critical("preload: {}", st.message());
      return kExitBootError;
    }
    auto boot_failure = [](const std::string& what) {
      spdlog::critical("preload process cannot start: {}", what);
      return kExitBootError;
    };
    if (!prepare_python_types()) return boot_failure(fetch_exception_text());
    // The import-time loop: closed before any worker forks (aiowsgi_bootstrap.py).
    PyRef loop = PyRef::steal(make_loop(cfg.app.loop));
    if (!loop || !set_current_loop(loop.get()))
      return boot_failure("creating the " + cfg.app.loop + " loop: " + fetch_exception_text());
    if (!setup_python_module(ctx, loop.get())) return boot_failure(fetch_exception_text());
    if (!call_module_helper("_preload_begin", nullptr) || !extend_sys_path(cfg.app))
      return boot_failure(fetch_exception_text());
    // [app] reload: the files imported (or named by a failed import) go to the master over
    // the channel, so an edit that fixes a broken import is seen.
    WorkerContext reporting = ctx;
    reporting.control_fd = channel_fd;
    ModuleFileReporter reload_reporter(reporting);
    PyRef app = PyRef::steal(load_app(cfg.app));
    reload_reporter.report();
    if (!app) {
      std::string where = cfg.app.wsgi_file.empty() ? cfg.app.module : cfg.app.wsgi_file;
      spdlog::critical("preload: cannot load the application from {}:\n{}", where,
                       fetch_exception_text());
      finish_python();
      return kExitAppLoadError;
    }
    loop = PyRef();
    if (!call_module_helper("_preload_imported", nullptr))
      return boot_failure(fetch_exception_text());
    spdlog::info("preload: application imported (pid {}); forking workers on request", getpid());
    int rc = serve_fork_requests(ctx, channel_fd, app.get());
    log::flush();
    return rc;
  } catch (const std::exception& e) {
    spdlog::critical("preload: {}", e.what());
    return kExitBootError;
  } catch (...) {
    return kExitBootError;
  }
}

}  // namespace aiowsgi::worker
