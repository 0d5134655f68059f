// aiowsgi-master: reads the configuration, binds the listen sockets, writes the pidfile and
// hands over to the Arbiter, which forks and supervises the workers (aiowsgi-master(8)).
// This process never runs Python.
#include <ev.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/exit_codes.h"
#include "common/log.h"
#include "common/result.h"
#include "common/tls_tickets.h"
#include "config/config.h"
#include "config/toml_writer.h"
#include "master/arbiter.h"
#include "master/capacity.h"
#include "master/listener_set.h"
#include "master/pidfile.h"
#include "master/privileges.h"
#include "master/systemd.h"
#include "master/upgrade.h"
#include "worker/preload.h"
#include "worker/worker.h"

namespace {

using aiowsgi::config::CommandLine;

// Start-up failures must reach the person starting the server even when logs go to a file.
void fatal(const std::string& message) {
  spdlog::error("{}", message);
  if (aiowsgi::log::logging_to_file()) fprintf(stderr, "aiowsgi-master: %s\n", message.c_str());
}

int run(int argc, char** argv) {
  aiowsgi::log::setup_stderr("master");
  // USR2 execs this path again: what was installed there then, not this process's file.
  aiowsgi::master::remember_invocation(argc, argv);

  aiowsgi::Result<CommandLine> parsed = aiowsgi::config::parse_command_line(argc, argv);
  if (!parsed.ok()) {
    fprintf(stderr, "aiowsgi-master: %s\n", parsed.status().message().c_str());
    return aiowsgi::kExitConfigError;
  }
  CommandLine cli = std::move(parsed).value();
  if (cli.action == CommandLine::Action::kHelp) {
    fputs(aiowsgi::config::usage_text().c_str(), stdout);
    return aiowsgi::kExitOk;
  }
  if (cli.action == CommandLine::Action::kPrintKeys) {
    fputs(aiowsgi::config::key_list().c_str(), stdout);
    return aiowsgi::kExitOk;
  }
  if (cli.action == CommandLine::Action::kVersion) {
    printf("aiowsgi-master %s\n", AIOWSGI_VERSION);
    return aiowsgi::kExitOk;
  }

  auto config = std::make_shared<aiowsgi::config::Config>();
  std::vector<std::string> errors;
  if (!aiowsgi::config::load_config(cli, config.get(), &errors)) {
    for (const std::string& e : errors) fprintf(stderr, "%s\n", e.c_str());
    return aiowsgi::kExitConfigError;
  }
  if (cli.action == CommandLine::Action::kPrintToml) {
    fputs(aiowsgi::config::to_toml(*config).c_str(), stdout);
    return aiowsgi::kExitOk;
  }
  if (cli.action == CommandLine::Action::kCheck) {
    for (const std::string& n : config->notes) printf("note: %s\n", n.c_str());
    printf("configuration OK\n");
    return aiowsgi::kExitOk;
  }

  if (aiowsgi::Status s = aiowsgi::log::setup(config->log.level, config->log.file, "master");
      !s.ok()) {
    fprintf(stderr, "aiowsgi-master: %s\n", s.message().c_str());
    return aiowsgi::kExitConfigError;
  }

  if (const std::string& venv = config->app.virtualenv; !venv.empty()) {
    // From an activated venv the user may not know is active: say where the app will run.
    spdlog::info("the app runs in the virtualenv {}{}", venv,
                 config->app.virtualenv_from_environment
                     ? " (from VIRTUAL_ENV; [app] virtualenv is unset)"
                     : "");
  }
  // uWSGI options of an --ini file that mean nothing here, each once with its reason.
  for (const std::string& n : config->notes) spdlog::info("{}", n);
  // Before any fork: the workers inherit the open-file limit this may raise.
  aiowsgi::master::check_capacity(*config);

  // A mask inherited from the shell or a service manager could block the signals the
  // master is driven by; writes to a dead worker's pipe must fail, not kill the master.
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Under systemd: READY/RELOADING/STOPPING go to $NOTIFY_SOCKET, and sockets passed by
  // socket activation replace binding (master/systemd.h). Both before any fork.
  aiowsgi::master::init_systemd_notify();
  // The secret every worker derives its TLS session-ticket keys from (common/tls_tickets.h).
  if (aiowsgi::Status s = aiowsgi::init_ticket_secret(); !s.ok())
    spdlog::warn("TLS session tickets stay per worker: {}", s.message());
  // Started by a USR2 upgrade: the old master holds the pidfile until this one serves.
  const int upgrade_channel = aiowsgi::master::take_upgrade_channel();
  // And the old master's [stats] sockets, close-on-exec from here on (the Arbiter adopts them).
  std::vector<aiowsgi::UniqueFd> inherited_stats = aiowsgi::master::take_inherited_stats_fds();
  // Removes the unix socket files it created on every early return below.
  aiowsgi::Result<aiowsgi::master::ListenerSet> listeners =
      aiowsgi::master::open_listeners(config->server);
  if (!listeners.ok()) {
    fatal(listeners.status().message());
    return aiowsgi::kExitBindError;
  }
  // Locked until the master exits: a second master with the same pidfile stops here.
  aiowsgi::master::Pidfile pidfile;
  if (!config->server.pidfile.empty() && upgrade_channel < 0) {
    pid_t holder = 0;
    if (aiowsgi::Status s = pidfile.acquire(config->server.pidfile, &holder); !s.ok()) {
      fatal(s.message());
      return holder != 0 ? aiowsgi::kExitPidfileLocked : aiowsgi::kExitConfigError;
    }
  }

  // After binding (port 80 needs root) and the pidfile (/run needs root), before any fork:
  // the workers inherit the unprivileged identity.
  if (!config->server.user.empty() || !config->server.group.empty()) {
    aiowsgi::Result<aiowsgi::master::Identity> id =
        aiowsgi::master::resolve_identity(config->server.user, config->server.group);
    aiowsgi::Status s = id.status();
    if (s.ok()) s = aiowsgi::master::drop_privileges(id.value(), listeners.value().unix_paths());
    if (!s.ok()) {
      fatal(s.message());
      pidfile.release();
      return aiowsgi::kExitConfigError;
    }
    spdlog::info("running as uid {} gid {}", getuid(), getgid());
  }

  const std::string config_pidfile = config->server.pidfile;
  struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
  if (loop == nullptr) {
    fatal("cannot initialise the event loop (libev)");
    pidfile.release();
    return aiowsgi::kExitBootError;
  }
  int status;
  {
    // The Arbiter owns the listeners from here (a reload may change them) and removes the
    // unix socket files when it is destroyed.
    // The one place the master meets the worker: what each forked child runs.
    aiowsgi::master::Arbiter arbiter(loop, std::move(cli), std::move(config),
                                     std::move(listeners.value()), &aiowsgi::worker::run_worker,
                                     &aiowsgi::worker::run_preload);
    arbiter.adopt_stats_sockets(std::move(inherited_stats));
    if (pidfile.fd() >= 0) arbiter.close_in_workers(pidfile.fd());
    const std::string pidfile_path = config_pidfile;
    arbiter.set_upgrade_hooks(
        [&] {
          if (upgrade_channel < 0) return;
          if (!aiowsgi::master::announce_ready(upgrade_channel, 5.0)) {
            ::kill(::getpid(), SIGTERM);  // stops as on TERM, through the loop's handler
            return;
          }
          if (pidfile_path.empty()) return;
          pid_t holder = 0;
          if (aiowsgi::Status s = pidfile.acquire(pidfile_path, &holder); !s.ok()) {
            spdlog::warn("upgrade: {}", s.message());
          } else {
            arbiter.close_in_workers(pidfile.fd());
          }
        },
        [&] { pidfile.hand_over(); });
    status = arbiter.run();
  }
  pidfile.release();
  spdlog::info("master exiting with status {}", status);
  aiowsgi::log::flush();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "aiowsgi-master: fatal: %s\n", e.what());
  } catch (...) {
    fprintf(stderr, "aiowsgi-master: fatal: unknown exception\n");
  }
  return aiowsgi::kExitBootError;
}
