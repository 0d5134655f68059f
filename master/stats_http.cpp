#include "master/stats_http.h"

#include <errno.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "common/address.h"
#include "common/guarded.h"
#include "common/unique_fd.h"
#include "master/systemd.h"

namespace aiowsgi::master {
namespace {

// A client that does not send its request or read the document within this many seconds is
// dropped (close_late_clients).
constexpr double kClientTimeoutSeconds = 5;
constexpr size_t kMaxClients = 256;
constexpr size_t kMaxRequestHead = 8192;

}  // namespace

MetricsRoute route_metrics_request(std::string_view head) {
  size_t eol = head.find('\n');
  if (eol == std::string_view::npos) {
    return head.size() > kMaxRequestHead ? MetricsRoute::kBad : MetricsRoute::kIncomplete;
  }
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return MetricsRoute::kBad;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return MetricsRoute::kBad;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (line.substr(sp2 + 1).rfind("HTTP/", 0) != 0) return MetricsRoute::kBad;
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") return MetricsRoute::kNotFound;
  if (method == "GET") return MetricsRoute::kMetrics;
  if (method == "HEAD") return MetricsRoute::kMetricsHead;
  return MetricsRoute::kBadMethod;
}

struct StatsHttp::Client {
  UniqueFd fd;
  Kind kind = Kind::kStats;
  ev_io io{};
  StatsHttp* owner = nullptr;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool writing = false;
  double deadline = 0;
};

StatsHttp::StatsHttp(struct ev_loop* loop, Render stats_document, Render metrics_document)
    : loop_(loop),
      stats_document_(std::move(stats_document)),
      metrics_document_(std::move(metrics_document)) {}

StatsHttp::~StatsHttp() {
  for (auto& e : endpoints_) ev_io_stop(loop_, &e->io);
  for (auto& c : clients_) ev_io_stop(loop_, &c->io);
  for (auto& e : endpoints_) remove_socket_file(e->listener);
}

Status StatsHttp::bind(const std::string& address, Kind kind, int backlog,
                       std::vector<UniqueFd>* inherited) {
  SocketAddress a;
  if (Status s = parse_address(address, &a); !s.ok()) {
    return Status::Config("cannot bind " + address + ": " + s.message());
  }
  auto e = std::make_unique<Endpoint>();
  const char* how = "";
  UniqueFd adopted;
  for (size_t i = 0; inherited != nullptr && i < inherited->size(); ++i) {
    if ((*inherited)[i] && socket_listens_on((*inherited)[i].get(), a)) {
      adopted = std::move((*inherited)[i]);
      inherited->erase(inherited->begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  if (adopted) {
    // The old master still holds this address: binding it again would fail. unix_path
    // stays empty so that neither this master (should it fail to start) nor a later exit
    // removes a socket file another master may serve.
    e->listener.fd = std::move(adopted);
    e->listener.name = a.text;
    e->listener.bound_name = a.text;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(e->listener.fd.get(), reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      e->listener.bound_name = format_sockaddr(reinterpret_cast<const sockaddr*>(&local), len);
    }
    how = ", from the previous master";
  } else {
    BindOptions options;
    options.backlog = backlog;
    Result<Listener> bound = bind_listener(a, options);
    if (!bound.ok()) return bound.status();
    e->listener = std::move(bound.value());
  }
  e->kind = kind;
  e->owner = this;
  spdlog::info("{} on {}{}", kind == Kind::kStats ? "stats server" : "metrics (GET /metrics)",
               e->listener.bound_name, how);
  ev_io_init(&e->io, &StatsHttp::accept_cb, e->listener.fd.get(), EV_READ);
  e->io.data = e.get();
  ev_io_start(loop_, &e->io);
  endpoints_.push_back(std::move(e));
  return Status::Ok();
}

std::vector<int> StatsHttp::fds() const {
  std::vector<int> fds;
  for (const auto& e : endpoints_) fds.push_back(e->listener.fd.get());
  for (const auto& c : clients_) fds.push_back(c->fd.get());
  return fds;
}

std::vector<int> StatsHttp::listen_fds() const {
  std::vector<int> fds;
  for (const auto& e : endpoints_) fds.push_back(e->listener.fd.get());
  return fds;
}

void StatsHttp::hand_over() {
  // The socket stays open in the new master, so nothing queued on it is lost; only this
  // process stops taking connections (its document would show a master on its way out).
  for (auto& e : endpoints_) ev_io_stop(loop_, &e->io);
  endpoints_.clear();  // closes the fds; remove_socket_file() is never called for them
}

void StatsHttp::close_late_clients(double now) {
  std::vector<Client*> late;
  for (auto& c : clients_) {
    if (now >= c->deadline) late.push_back(c.get());
  }
  for (Client* c : late) close_client(c);
}

// --- libev -------------------------------------------------------------------------------------

void StatsHttp::accept_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* e = static_cast<Endpoint*>(w->data);
  guarded("stats accept", [&] { e->owner->on_accept(e); });
}

void StatsHttp::client_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* c = static_cast<Client*>(w->data);
  guarded("stats client", [&] { c->owner->on_client(c); });
}

void StatsHttp::on_accept(Endpoint* e) {
  for (int n = 0; n < 64; ++n) {
    UniqueFd fd(::accept4(e->listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("stats accept: {}", errno_string(errno));
      return;
    }
    if (clients_.size() >= kMaxClients) continue;  // |fd| closes it
    auto c = std::make_unique<Client>();
    c->fd = std::move(fd);
    c->kind = e->kind;
    c->owner = this;
    c->deadline = ev_now(loop_) + kClientTimeoutSeconds;
    ev_io_init(&c->io, &StatsHttp::client_cb, c->fd.get(), EV_READ);
    c->io.data = c.get();
    Client* raw = c.get();
    clients_.push_back(std::move(c));
    if (raw->kind == Kind::kStats) {
      // uWSGI's protocol: the document is written at once, no request is read.
      start_writing(raw, stats_document_());
    } else {
      ev_io_start(loop_, &raw->io);
    }
  }
}

void StatsHttp::start_writing(Client* c, std::string body) {
  c->out = std::move(body);
  c->sent = 0;
  c->writing = true;
  ev_io_stop(loop_, &c->io);
  ev_io_set(&c->io, c->fd.get(), EV_WRITE);
  on_client(c);  // most documents fit the socket buffer: no loop round trip
}

void StatsHttp::answer_metrics(Client* c) {
  char buf[2048];
  ssize_t n = ::recv(c->fd.get(), buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    close_client(c);
    return;
  }
  c->in.append(buf, static_cast<size_t>(n));
  MetricsRoute r = route_metrics_request(c->in);
  std::string status, ctype = "text/plain; charset=utf-8", body;
  switch (r) {
    case MetricsRoute::kIncomplete:
      return;
    case MetricsRoute::kMetrics:
    case MetricsRoute::kMetricsHead:
      status = "200 OK";
      ctype = "text/plain; version=0.0.4; charset=utf-8";
      body = metrics_document_();
      break;
    case MetricsRoute::kNotFound:
      status = "404 Not Found";
      body = "not found: the metrics are at /metrics\n";
      break;
    case MetricsRoute::kBadMethod:
      status = "405 Method Not Allowed";
      body = "only GET /metrics\n";
      break;
    case MetricsRoute::kBad:
      status = "400 Bad Request";
      body = "bad request\n";
      break;
  }
  std::string response = fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
      status, ctype, body.size(), r == MetricsRoute::kBadMethod ? "Allow: GET, HEAD\r\n" : "");
  if (r != MetricsRoute::kMetricsHead) response += body;
  start_writing(c, std::move(response));
}

void StatsHttp::on_client(Client* c) {
  if (!c->writing) {
    answer_metrics(c);
    return;
  }
  while (c->sent < c->out.size()) {
    ssize_t n = ::send(c->fd.get(), c->out.data() + c->sent, c->out.size() - c->sent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!ev_is_active(&c->io)) ev_io_start(loop_, &c->io);
        return;
      }
      break;
    }
    c->sent += static_cast<size_t>(n);
  }
  close_client(c);
}

void StatsHttp::close_client(Client* c) {
  ev_io_stop(loop_, &c->io);
  if (c->writing && c->fd) ::shutdown(c->fd.get(), SHUT_WR);
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [c](const std::unique_ptr<Client>& p) { return p.get() == c; });
  if (it != clients_.end()) clients_.erase(it);
}

}  // namespace aiowsgi::master
