#include "master/stats_server.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <exception>
#include <iterator>
#include <map>
#include <utility>

#include "common/guarded.h"
#include "master/arbiter.h"
#include "master/worker_table.h"

namespace aiowsgi::master {
namespace {

// A client that does not send its request or read the document within this many seconds is
// dropped, so a stuck scraper cannot pile up connections in the master.
constexpr double kClientTimeoutSeconds = 5;
constexpr size_t kMaxClients = 256;
constexpr size_t kMaxRequestHead = 8192;

uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

// Prometheus label values: backslash, double quote and newline are escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\' || ch == '"') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

std::string bucket_bound(double b) {
  // Shortest exact text: 0.0025 rather than 0.0025000000000000001.
  return fmt::format("{}", b);
}

}  // namespace

// --- Pure parts ------------------------------------------------------------------------------

std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20 || ch >= 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(ch));
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  out += '"';
  return out;
}

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

void listen_queue(int fd, uint64_t* queue, uint64_t* max_queue) {
  *queue = 0;
  *max_queue = 0;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == 10) {
    // TCP_LISTEN (10): the kernel reports the accept queue here (tcp_get_info).
    *queue = info.tcpi_unacked;
    *max_queue = info.tcpi_sacked;
  }
}

void read_memory(pid_t pid, uint64_t* rss, uint64_t* vsz) {
  *rss = *vsz = 0;
  if (pid <= 0) return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return;
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return;
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  *vsz = size * page;
  *rss = resident * page;
}

std::string stats_json(const StatsSnapshot& s) {
  fmt::memory_buffer b;
  auto out = std::back_inserter(b);
  uint64_t total_queue = 0;
  for (const SocketView& so : s.sockets) total_queue += so.queue;
  fmt::format_to(out,
                 "{{\"version\":{},\"listen_queue\":{},\"listen_queue_errors\":{},"
                 "\"signal_queue\":0,\"load\":{},\"pid\":{},\"uid\":{},\"gid\":{},\"cwd\":{},"
                 "\"locks\":[],\"sockets\":[",
                 json_quote(AIOWSGI_VERSION), total_queue, s.listen_queue_errors, total_queue,
                 s.pid, s.uid, s.gid, json_quote(s.cwd));
  for (size_t i = 0; i < s.sockets.size(); ++i) {
    const SocketView& so = s.sockets[i];
    fmt::format_to(out,
                   "{}{{\"name\":{},\"proto\":{},\"queue\":{},\"max_queue\":{},\"shared\":0,"
                   "\"can_offload\":0}}",
                   i ? "," : "", json_quote(so.name), json_quote(so.proto), so.queue, so.max_queue);
  }
  fmt::format_to(out, "],\"workers\":[");
  for (size_t i = 0; i < s.workers.size(); ++i) {
    const WorkerView& w = s.workers[i];
    ScoreTotals t = w.score ? StatsBoard::totals(*w.score, w.core_detail) : ScoreTotals{};
    uint64_t avg_rt = w.score ? get(w.score->avg_rt_us) : 0;
    fmt::format_to(out,
                   "{}{{\"id\":{},\"pid\":{},\"accepting\":{},\"requests\":{},"
                   "\"delta_requests\":{},\"exceptions\":{},\"harakiri_count\":{},\"signals\":0,"
                   "\"signal_queue\":0,\"status\":\"{}\",\"rss\":{},\"vsz\":{},"
                   "\"running_time\":{},\"last_spawn\":{},\"respawn_count\":{},\"tx\":{},"
                   "\"avg_rt\":{},\"apps\":[",
                   i ? "," : "", w.id, w.pid, w.accepting ? 1 : 0, t.requests, w.delta_requests,
                   t.exceptions, t.harakiri, t.in_flight > 0 ? "busy" : "idle", w.rss, w.vsz,
                   t.running_time_us, static_cast<int64_t>(w.last_spawn), w.respawn_count, t.tx,
                   avg_rt);
    if (w.pid > 0) {
      fmt::format_to(out,
                     "{{\"id\":0,\"modifier1\":0,\"mountpoint\":\"\",\"startup_time\":0,"
                     "\"requests\":{},\"exceptions\":{},\"chdir\":\"\"}}",
                     t.requests, t.exceptions);
    }
    fmt::format_to(out, "],\"cores\":[");
    // The master's own bounds only: the slot's core_detail field is the worker's to write.
    int listed =
        w.score ? static_cast<int>(std::min<int64_t>(std::max(w.cores, 0), w.core_detail)) : 0;
    for (int c = 0; c < listed; ++c) {
      const CoreScore& cs = w.score->cores()[c];
      uint64_t in_request = get(cs.in_request);
      fmt::format_to(out,
                     "{}{{\"id\":{},\"requests\":{},\"static_requests\":0,\"routed_requests\":0,"
                     "\"offloaded_requests\":0,\"write_errors\":{},\"read_errors\":{},"
                     "\"in_request\":{},\"vars\":[",
                     c ? "," : "", c, get(cs.requests), get(cs.write_errors), get(cs.read_errors),
                     in_request);
      if (in_request) {
        uint32_t len = std::min<uint32_t>(cs.request_text_len.load(std::memory_order_acquire),
                                          kRequestTextBytes);
        std::string_view text(cs.request_text, len);
        size_t sp = text.find(' ');
        if (sp != std::string_view::npos) {
          fmt::format_to(out, "{},{}",
                         json_quote("REQUEST_METHOD=" + std::string(text.substr(0, sp))),
                         json_quote("REQUEST_URI=" + std::string(text.substr(sp + 1))));
        }
        // The start as unix time: now minus the request's age on the monotonic clock.
        uint64_t start = get(cs.start_ns), mono = monotonic_ns();
        double age = mono > start ? static_cast<double>(mono - start) / 1e9 : 0;
        fmt::format_to(out, "],\"req_info\":{{\"request_start\":{:.6f}}}}}", s.now - age);
      } else {
        fmt::format_to(out, "],\"req_info\":{{}}}}");
      }
    }
    fmt::format_to(out, "]}}");
  }
  fmt::format_to(out, "]}}\n");
  return fmt::to_string(b);
}

std::string metrics_text(const StatsSnapshot& s) {
  ScoreTotals all = s.retired;
  uint64_t busy = 0, cores = 0, respawns = 0;
  for (const WorkerView& w : s.workers) {
    if (w.score) all.add(StatsBoard::totals(*w.score, w.core_detail));
    respawns += static_cast<uint64_t>(w.respawn_count);
    if (w.pid > 0) cores += static_cast<uint64_t>(w.cores);
  }
  busy = all.in_flight;
  fmt::memory_buffer b;
  auto out = std::back_inserter(b);
  auto head = [&](const char* name, const char* type, const char* help) {
    fmt::format_to(out, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  head("aiowsgi_requests_total", "counter",
       "Requests handed to the application, by response status class (none: no status sent).");
  static const char* kClassNames[kStatusClasses] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 0; i < kStatusClasses; ++i) {
    fmt::format_to(out, "aiowsgi_requests_total{{status=\"{}\"}} {}\n", kClassNames[i],
                   all.status_class[i]);
  }
  head("aiowsgi_exceptions_total", "counter", "Exceptions raised by the application.");
  fmt::format_to(out, "aiowsgi_exceptions_total {}\n", all.exceptions);
  head("aiowsgi_harakiri_total", "counter", "Requests cancelled for running past harakiri.");
  fmt::format_to(out, "aiowsgi_harakiri_total {}\n", all.harakiri);
  head("aiowsgi_response_bytes_total", "counter", "Response bytes sent to clients.");
  fmt::format_to(out, "aiowsgi_response_bytes_total {}\n", all.tx);
  head("aiowsgi_read_errors_total", "counter", "Requests whose body could not be read.");
  fmt::format_to(out, "aiowsgi_read_errors_total {}\n", all.read_errors);
  head("aiowsgi_write_errors_total", "counter", "Responses that could not be written.");
  fmt::format_to(out, "aiowsgi_write_errors_total {}\n", all.write_errors);
  head("aiowsgi_request_duration_seconds", "histogram",
       "Time from the request head to the end of the response.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    cumulative += all.duration_bucket[i];
    std::string le = i + 1 < kBucketCount ? bucket_bound(kDurationBuckets[i]) : "+Inf";
    fmt::format_to(out, "aiowsgi_request_duration_seconds_bucket{{le=\"{}\"}} {}\n", le,
                   cumulative);
  }
  fmt::format_to(out, "aiowsgi_request_duration_seconds_sum {:.6f}\n",
                 static_cast<double>(all.running_time_us) / 1e6);
  fmt::format_to(out, "aiowsgi_request_duration_seconds_count {}\n", cumulative);
  head("aiowsgi_requests_in_flight", "gauge", "Requests being served right now.");
  fmt::format_to(out, "aiowsgi_requests_in_flight {}\n", busy);
  head("aiowsgi_cores", "gauge", "Cores of the running workers (the most requests in flight).");
  fmt::format_to(out, "aiowsgi_cores {}\n", cores);
  head("aiowsgi_cores_busy", "gauge", "Cores serving a request, per worker.");
  for (const WorkerView& w : s.workers) {
    fmt::format_to(out, "aiowsgi_cores_busy{{worker=\"{}\"}} {}\n", w.id,
                   w.score ? get(w.score->in_flight) : 0);
  }
  head("aiowsgi_listen_queue", "gauge", "Connections waiting in a listen socket's accept queue.");
  for (const SocketView& so : s.sockets) {
    fmt::format_to(out, "aiowsgi_listen_queue{{socket=\"{}\"}} {}\n", label(so.name), so.queue);
  }
  head("aiowsgi_listen_queue_max", "gauge", "Accept queue limit (listen backlog) of a socket.");
  for (const SocketView& so : s.sockets) {
    fmt::format_to(out, "aiowsgi_listen_queue_max{{socket=\"{}\"}} {}\n", label(so.name),
                   so.max_queue);
  }
  head("aiowsgi_listen_queue_full_total", "counter",
       "Seconds in which an accept queue was found full.");
  fmt::format_to(out, "aiowsgi_listen_queue_full_total {}\n", s.listen_queue_errors);
  head("aiowsgi_workers", "gauge", "Worker processes running.");
  uint64_t running = 0;
  for (const WorkerView& w : s.workers) running += w.pid > 0;
  fmt::format_to(out, "aiowsgi_workers {}\n", running);
  head("aiowsgi_worker_respawns_total", "counter",
       "Worker processes started to replace one (crash, recycle or reload).");
  fmt::format_to(out, "aiowsgi_worker_respawns_total {}\n", respawns);
  head("aiowsgi_reloads_total", "counter", "Graceful reloads started (SIGHUP).");
  fmt::format_to(out, "aiowsgi_reloads_total {}\n", s.reloads);
  head("aiowsgi_worker_rss_bytes", "gauge", "Resident memory of each worker process.");
  for (const WorkerView& w : s.workers) {
    if (w.pid > 0)
      fmt::format_to(out, "aiowsgi_worker_rss_bytes{{worker=\"{}\"}} {}\n", w.id, w.rss);
  }
  return fmt::to_string(b);
}

// --- The server ------------------------------------------------------------------------------

struct StatsServer::Client {
  UniqueFd fd;
  Kind kind = Kind::kStats;
  ev_io io{};
  StatsServer* owner = nullptr;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool writing = false;
  double deadline = 0;
};

StatsServer::StatsServer(struct ev_loop* loop, const Arbiter& arbiter)
    : loop_(loop), arbiter_(arbiter) {}

StatsServer::~StatsServer() {
  ev_timer_stop(loop_, &tick_);
  for (auto& e : endpoints_) ev_io_stop(loop_, &e->io);
  for (auto& c : clients_) ev_io_stop(loop_, &c->io);
  std::vector<Listener> files;
  for (auto& e : endpoints_) files.push_back(std::move(e->listener));
  remove_socket_files(files);
}

Status StatsServer::start(const config::Config& config) {
  int workers = std::max(1, config.server.workers);
  if (Status s = StatsBoard::create(StatsBoard::slots_for(workers), config.server.cores, &board_);
      !s.ok()) {
    return s;
  }
  if (!config.stats.listen.empty()) {
    if (Status s = bind_endpoint(config.stats.listen, Kind::kStats, 128); !s.ok()) return s;
  }
  if (!config.stats.metrics.empty()) {
    if (Status s = bind_endpoint(config.stats.metrics, Kind::kMetrics, 128); !s.ok()) return s;
  }
  ev_timer_init(&tick_, &StatsServer::tick_cb, 1.0, 1.0);
  tick_.data = this;
  ev_timer_start(loop_, &tick_);
  return Status::Ok();
}

Status StatsServer::bind_endpoint(const std::string& address, Kind kind, int backlog) {
  SocketAddress a;
  if (Status s = parse_address(address, &a); !s.ok()) {
    return Status::Config("cannot bind " + address + ": " + s.message());
  }
  auto e = std::make_unique<Endpoint>();
  BindOptions options;
  options.backlog = backlog;
  if (Status s = bind_listener(a, options, &e->listener); !s.ok()) return s;
  e->kind = kind;
  e->owner = this;
  spdlog::info("{} on {}", kind == Kind::kStats ? "stats server" : "metrics (GET /metrics)",
               e->listener.bound_name);
  ev_io_init(&e->io, &StatsServer::accept_cb, e->listener.fd.get(), EV_READ);
  e->io.data = e.get();
  ev_io_start(loop_, &e->io);
  endpoints_.push_back(std::move(e));
  return Status::Ok();
}

std::vector<int> StatsServer::master_fds() const {
  std::vector<int> fds;
  for (const auto& e : endpoints_) fds.push_back(e->listener.fd.get());
  for (const auto& c : clients_) fds.push_back(c->fd.get());
  return fds;
}

void StatsServer::on_spawn(const WorkerProcess* p) {
  int slot = board_.claim();
  if (slot < 0) {
    spdlog::warn("worker {}: the stats board is full; its figures are not reported", p->id);
  }
  slot_of_[p] = slot;
}

WorkerScore* StatsServer::score_for_child(const WorkerProcess* p) {
  auto it = slot_of_.find(p);
  if (it != slot_of_.end() && it->second >= 0) return board_.worker(it->second);
  // No room on the board: a private record keeps the worker's code path the same.
  StatsBoard* own = new StatsBoard();  // lives as long as the child
  if (!StatsBoard::create(1, static_cast<int>(board_.core_detail()), own).ok()) return nullptr;
  return own->worker(own->claim());
}

const StatsBoard* StatsServer::board_for_child(const WorkerProcess* p) const {
  auto it = slot_of_.find(p);
  return it != slot_of_.end() && it->second >= 0 ? &board_ : nullptr;
}

const WorkerScore* StatsServer::score_of(const WorkerProcess* p) const {
  auto it = slot_of_.find(p);
  return it == slot_of_.end() ? nullptr : board_.worker(it->second);
}

ScoreView StatsServer::view_of(const WorkerProcess* p) const {
  const WorkerScore* w = score_of(p);
  return w ? view(*w, board_.core_detail()) : ScoreView{};
}

void StatsServer::on_exit(const WorkerProcess* p) {
  auto it = slot_of_.find(p);
  if (it == slot_of_.end()) return;
  board_.release(it->second);
  slot_of_.erase(it);
  requests_at_tick_.erase(p->pid);
  delta_requests_.erase(p->pid);
}

StatsSnapshot StatsServer::snapshot() {
  StatsSnapshot s;
  s.pid = getpid();
  s.uid = getuid();
  s.gid = getgid();
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) != nullptr) s.cwd = cwd;
  s.now = ev_time();
  for (const auto& l : arbiter_.listeners()) {
    SocketView v;
    v.name = l->bound_name.empty() ? l->name : l->bound_name;
    v.proto = l->uwsgi ? "uwsgi" : "http";
    listen_queue(l->fd.get(), &v.queue, &v.max_queue);
    if (v.max_queue == 0) v.max_queue = static_cast<uint64_t>(arbiter_.config().server.backlog);
    s.sockets.push_back(std::move(v));
  }
  const WorkerTable& table = arbiter_.table();
  std::vector<WorkerProcess*> procs = table.all();
  int max_id = arbiter_.target_workers();
  for (WorkerProcess* p : procs) max_id = std::max(max_id, p->id);
  for (int id = 1; id <= max_id; ++id) {
    // One entry per worker id, as uWSGI: the process serving it (during a reload the newest),
    // else one still finishing its requests.
    const WorkerProcess* p = table.active(id);
    if (p == nullptr) {
      for (WorkerProcess* q : procs) {
        if (q->id == id && q->state != WorkerState::kExited &&
            (p == nullptr || q->generation > p->generation))
          p = q;
      }
    }
    const WorkerSlot* slot = table.find_slot(id);
    if (p == nullptr && id > arbiter_.target_workers()) continue;
    WorkerView v;
    v.id = id;
    if (slot != nullptr) {
      v.respawn_count = slot->respawn_count;
      v.last_spawn = slot->last_spawn;
    }
    v.cores = arbiter_.config().server.cores;
    if (p != nullptr) {
      v.pid = p->pid;
      v.accepting = p->state == WorkerState::kBooted;
      if (p->config) v.cores = p->config->server.cores;
      auto it = slot_of_.find(p);
      if (it != slot_of_.end()) v.score = board_.worker(it->second);
      v.core_detail = board_.core_detail();
      read_memory(p->pid, &v.rss, &v.vsz);
      auto d = delta_requests_.find(p->pid);
      if (d != delta_requests_.end()) v.delta_requests = d->second;
    }
    s.workers.push_back(v);
  }
  s.listen_queue_errors = listen_queue_errors_;
  s.reloads = static_cast<uint64_t>(arbiter_.reloads());
  s.retired = board_.retired();
  // Processes not listed (an old generation still draining) still count in the totals.
  for (const auto& [p, slot] : slot_of_) {
    const WorkerScore* w = board_.worker(slot);
    bool listed = std::any_of(s.workers.begin(), s.workers.end(),
                              [w](const WorkerView& v) { return v.score == w; });
    if (w != nullptr && !listed) s.retired.add(StatsBoard::totals(*w, board_.core_detail()));
  }
  return s;
}

// --- libev -------------------------------------------------------------------------------------

void StatsServer::accept_cb(struct ev_loop*, ev_io* w, int) noexcept {
  auto* e = static_cast<Endpoint*>(w->data);
  guarded("stats accept", [&] { e->owner->on_accept(e); });
}

void StatsServer::client_cb(struct ev_loop*, ev_io* w, int revents) noexcept {
  auto* c = static_cast<Client*>(w->data);
  guarded("stats client", [&] { c->owner->on_client(c, revents); });
}

void StatsServer::tick_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<StatsServer*>(w->data);
  guarded("stats tick", [&] { self->on_tick(); });
}

void StatsServer::on_accept(Endpoint* e) {
  for (int n = 0; n < 64; ++n) {
    int fd = ::accept4(e->listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        spdlog::warn("stats accept: {}", errno_string(errno));
      return;
    }
    auto c = std::make_unique<Client>();
    c->fd.reset(fd);
    if (clients_.size() >= kMaxClients) continue;  // closed by c's destructor
    c->kind = e->kind;
    c->owner = this;
    c->deadline = ev_now(loop_) + kClientTimeoutSeconds;
    ev_io_init(&c->io, &StatsServer::client_cb, fd, EV_READ);
    c->io.data = c.get();
    Client* raw = c.get();
    clients_.push_back(std::move(c));
    if (raw->kind == Kind::kStats) {
      // uWSGI's protocol: the document is written at once, no request is read.
      start_writing(raw, stats_json(snapshot()));
    } else {
      ev_io_start(loop_, &raw->io);
    }
  }
}

void StatsServer::start_writing(Client* c, std::string body) {
  c->out = std::move(body);
  c->sent = 0;
  c->writing = true;
  ev_io_stop(loop_, &c->io);
  ev_io_set(&c->io, c->fd.get(), EV_WRITE);
  on_client(c, EV_WRITE);  // most documents fit the socket buffer: no loop round trip
}

void StatsServer::on_client(Client* c, int) {
  if (!c->writing) {
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
        body = metrics_text(snapshot());
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

void StatsServer::close_client(Client* c) {
  ev_io_stop(loop_, &c->io);
  if (c->writing && c->fd) ::shutdown(c->fd.get(), SHUT_WR);
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [c](const std::unique_ptr<Client>& p) { return p.get() == c; });
  if (it != clients_.end()) clients_.erase(it);
}

void StatsServer::on_tick() {
  // delta_requests: requests per worker during the last second, as uWSGI reports them.
  for (const auto& [p, slot] : slot_of_) {
    const WorkerScore* w = board_.worker(slot);
    if (w == nullptr) continue;
    uint64_t now = get(w->requests);
    auto [it, fresh] = requests_at_tick_.try_emplace(p->pid, now);
    // The count is the worker's to write: one that goes backwards gives 0, not a wrap.
    delta_requests_[p->pid] = fresh ? now : now >= it->second ? now - it->second : 0;
    it->second = now;
  }
  // A full accept queue means clients are being refused or delayed: count it, as uWSGI's
  // listen_queue_errors does, and say so once per second at most.
  for (const auto& l : arbiter_.listeners()) {
    uint64_t q = 0, max = 0;
    listen_queue(l->fd.get(), &q, &max);
    if (max > 0 && q >= max) {
      ++listen_queue_errors_;
      spdlog::warn("listen queue of {} is full ({}/{})", l->bound_name, q, max);
    }
  }
  double now = ev_now(loop_);
  std::vector<Client*> late;
  for (auto& c : clients_) {
    if (now >= c->deadline) late.push_back(c.get());
  }
  for (Client* c : late) close_client(c);
}

}  // namespace aiowsgi::master
