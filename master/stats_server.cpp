#include "master/stats_server.h"

#include <limits.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/guarded.h"
#include "master/arbiter.h"
#include "master/proc_stats.h"
#include "master/worker_table.h"

namespace aiowsgi::master {
namespace {

uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

}  // namespace

StatsServer::StatsServer(struct ev_loop* loop, const Arbiter& arbiter)
    : loop_(loop),
      arbiter_(arbiter),
      http_(
          loop, [this] { return stats_json(snapshot()); },
          [this] { return metrics_text(snapshot()); }) {}

StatsServer::~StatsServer() { ev_timer_stop(loop_, &tick_); }

Status StatsServer::start(const config::Config& config, std::vector<UniqueFd> inherited) {
  int workers = std::max(1, config.server.workers);
  if (Status s = StatsBoard::create(StatsBoard::slots_for(workers), config.server.cores, &board_);
      !s.ok()) {
    return s;
  }
  if (!config.stats.listen.empty()) {
    if (Status s = http_.bind(config.stats.listen, StatsHttp::Kind::kStats, 128, &inherited);
        !s.ok()) {
      return s;
    }
  }
  if (!config.stats.metrics.empty()) {
    if (Status s = http_.bind(config.stats.metrics, StatsHttp::Kind::kMetrics, 128, &inherited);
        !s.ok()) {
      return s;
    }
  }
  for (const UniqueFd& fd : inherited) {
    // The address changed across the upgrade; the old master closes its copy once this one
    // serves, and with it the old address.
    spdlog::debug("stats socket fd {} from the previous master matches no [stats] address; closed",
                  fd.get());
  }
  inherited.clear();
  ev_timer_init(&tick_, &StatsServer::tick_cb, 1.0, 1.0);
  tick_.data = this;
  ev_timer_start(loop_, &tick_);
  return Status::Ok();
}

std::vector<int> StatsServer::master_fds() const { return http_.fds(); }

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
    ListenQueue q = listen_queue(l->fd.get());
    v.queue = q.queue;
    v.max_queue = q.max_queue;
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
      if (p->forked()) {  // a preloaded worker's pid may still be on its way
        ProcessMemory m = read_memory(p->pid);
        v.rss = m.rss;
        v.vsz = m.vsz;
      }
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

void StatsServer::tick_cb(struct ev_loop*, ev_timer* w, int) noexcept {
  auto* self = static_cast<StatsServer*>(w->data);
  guarded("stats tick", [&] { self->on_tick(); });
}

void StatsServer::on_tick() {
  // delta_requests: requests per worker during the last second, as uWSGI reports them.
  for (const auto& [p, slot] : slot_of_) {
    const WorkerScore* w = board_.worker(slot);
    if (w == nullptr || !p->forked()) continue;
    uint64_t now = get(w->requests);
    auto [it, fresh] = requests_at_tick_.try_emplace(p->pid, now);
    // The count is the worker's to write: one that goes backwards gives 0, not a wrap.
    delta_requests_[p->pid] = fresh ? now : now >= it->second ? now - it->second : 0;
    it->second = now;
  }
  // A full accept queue means clients are being refused or delayed: count it, as uWSGI's
  // listen_queue_errors does, and say so once per second at most.
  for (const auto& l : arbiter_.listeners()) {
    ListenQueue q = listen_queue(l->fd.get());
    if (q.max_queue > 0 && q.queue >= q.max_queue) {
      ++listen_queue_errors_;
      spdlog::warn("listen queue of {} is full ({}/{})", l->bound_name, q.queue, q.max_queue);
    }
  }
  http_.close_late_clients(ev_now(loop_));
}

}  // namespace aiowsgi::master
