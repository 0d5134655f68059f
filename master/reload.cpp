#include "master/reload.h"

#include <spdlog/spdlog.h>

#include <string>
#include <utility>
#include <vector>

#include "common/log.h"

namespace aiowsgi::master {

Reload::Reload(config::CommandLine cli, std::shared_ptr<const config::Config> config,
               ListenerSet listeners)
    : cli_(std::move(cli)), config_(std::move(config)), listeners_(std::move(listeners)) {}

Status Reload::begin(int target_workers) {
  config::Config fresh;
  std::vector<std::string> errors;
  const std::string& file = cli_.config_file.empty() ? cli_.ini_file : cli_.config_file;
  spdlog::info("re-reading the configuration{}", file.empty() ? "" : " from " + file);
  prev_config_.reset();
  if (!config::load_config(cli_, &fresh, &errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    return Status::Config("configuration errors");
  }
  if (Status s = listeners_.change(fresh.server, config_->server); !s.ok()) {
    spdlog::error("{}", s.message());
    return Status::Config("a new listen address could not be bound");
  }
  if (fresh.log.file != config_->log.file) {
    spdlog::warn("log.file changed: restart the master to apply");
  }
  if (fresh.server.user != config_->server.user || fresh.server.group != config_->server.group) {
    spdlog::warn(
        "server.user/group changed: privileges were dropped at start-up; restart the "
        "master to apply");
  }
  if (fresh.server.pidfile != config_->server.pidfile) {
    spdlog::warn("server.pidfile changed: restart the master to apply");
  }
  if (Status s = log::set_level(fresh.log.level); !s.ok()) spdlog::warn("{}", s.message());
  prev_config_ = config_;
  prev_target_workers_ = target_workers;
  config_ = std::make_shared<const config::Config>(std::move(fresh));
  ++generation_;
  return Status::Ok();
}

void Reload::commit() {
  listeners_.commit();
  prev_config_.reset();
}

std::optional<int> Reload::rollback() {
  listeners_.rollback();
  // prev_config_ is set only once a new generation was started (the config was valid).
  if (!prev_config_) return std::nullopt;
  config_ = std::move(prev_config_);
  prev_config_.reset();
  (void)log::set_level(config_->log.level);  // it was valid when it was first applied
  return prev_target_workers_;
}

}  // namespace aiowsgi::master
