// StatsHttp: the master's small servers for the monitoring endpoints. A [stats] listen
// connection gets the stats document at once, without a request being read (the protocol
// of uWSGI's stats server); a [stats] metrics connection gets one HTTP/1.x answer, for
// GET /metrics. Runs on the master's libev loop, so it answers while every worker is busy;
// the documents come from callbacks. Master only; no Python.
#pragma once

#include <ev.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "master/listeners.h"

namespace aiowsgi::master {

enum class MetricsRoute { kIncomplete, kMetrics, kMetricsHead, kNotFound, kBadMethod, kBad };
// Routes the HTTP request whose first bytes are |head|: kIncomplete until the request line is
// complete.
MetricsRoute route_metrics_request(std::string_view head);

class StatsHttp {
 public:
  enum class Kind { kStats, kMetrics };
  using Render = std::function<std::string()>;

  StatsHttp(struct ev_loop* loop, Render stats_document, Render metrics_document);
  ~StatsHttp();  // closes every socket and removes the unix socket files it created
  StatsHttp(const StatsHttp&) = delete;
  StatsHttp& operator=(const StatsHttp&) = delete;
  StatsHttp(StatsHttp&&) = delete;
  StatsHttp& operator=(StatsHttp&&) = delete;

  // Serves |kind| on |address|: on the socket of |inherited| bound to it (passed by the old
  // master in an upgrade; moved out of the vector, its unix socket file never removed here),
  // else on a socket bound now. An Io/Config status names the address.
  Status bind(const std::string& address, Kind kind, int backlog,
              std::vector<UniqueFd>* inherited = nullptr);
  // Every fd it holds (listeners and clients): the workers must not inherit them.
  std::vector<int> fds() const;
  // The listening sockets only, for an upgrade to pass on.
  std::vector<int> listen_fds() const;
  // A new master serves these sockets now: stops accepting on them and closes this
  // process's copies, leaving their unix socket files in place. Clients being answered
  // finish.
  void hand_over();
  // Drops the clients that have not sent their request or read their answer in time, so a
  // stuck scraper cannot pile up connections in the master. Called about once a second.
  void close_late_clients(double now);

 private:
  struct Client;
  struct Endpoint {
    Listener listener;
    Kind kind = Kind::kStats;
    ev_io io{};
    StatsHttp* owner = nullptr;
  };

  static void accept_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  static void client_cb(struct ev_loop* loop, ev_io* w, int revents) noexcept;
  void on_accept(Endpoint* e);
  void on_client(Client* c);
  void answer_metrics(Client* c);
  void start_writing(Client* c, std::string body);
  void close_client(Client* c);

  struct ev_loop* loop_;
  Render stats_document_;
  Render metrics_document_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace aiowsgi::master
