// Reload: the master's configuration generations. It holds the serving configuration, its
// generation number and the listen sockets; a HUP re-reads the configuration into a new
// generation (begin), which the Arbiter makes final once the new workers serve every slot
// (commit) or undoes when they cannot start (rollback). The Arbiter starts and stops the
// workers; this class owns what a generation is. Master only; no Python.
#pragma once

#include <memory>
#include <optional>

#include "common/status.h"
#include "config/config.h"
#include "master/listener_set.h"

namespace aiowsgi::master {

class Reload {
 public:
  // |cli| is kept to re-read the configuration file and overrides on every HUP.
  Reload(config::CommandLine cli, std::shared_ptr<const config::Config> config,
         ListenerSet listeners);

  // The configuration new workers get: the new generation's once begin() succeeded.
  const std::shared_ptr<const config::Config>& config() const { return config_; }
  // 1 for the configuration the master started with, one more for each begin() that
  // succeeded (a failed reload keeps its number: stats count started reloads).
  int generation() const { return generation_; }
  const ListenerSet& listeners() const { return listeners_; }

  // Re-reads the configuration and moves the listen sockets to it, logging every error and
  // the settings that only a restart applies. On success the new configuration is current
  // and generation() is one more; |target_workers| (the worker count now) is kept for
  // rollback(). On failure nothing changed and the status says what failed.
  Status begin(int target_workers);
  // The new generation serves every slot: removed sockets close, the previous
  // configuration is forgotten.
  void commit();
  // Undoes begin(): the sockets it bound close, and when a new generation had started, the
  // previous configuration (and log level) is restored and the worker count it had is
  // returned; the caller stops that generation's workers that are not serving yet.
  std::optional<int> rollback();

 private:
  config::CommandLine cli_;
  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const config::Config> prev_config_;  // set from begin() to commit/rollback
  int prev_target_workers_ = 1;
  int generation_ = 1;
  ListenerSet listeners_;
};

}  // namespace aiowsgi::master
