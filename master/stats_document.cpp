#include "master/stats_document.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string_view>

namespace aiowsgi::master {
namespace {

// Insertion order: the keys come out in uWSGI's order, as readers of its documents expect.
using Json = nlohmann::ordered_json;

uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

// nlohmann wants UTF-8; these strings are bytes (a URI may hold anything). Each byte becomes
// the code point of the same value, so dump(ensure_ascii) escapes bytes >= 0x7f as \u00XX.
std::string latin1(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char ch : bytes) {
    if (ch < 0x80) {
      out += static_cast<char>(ch);
    } else {
      out += static_cast<char>(0xC0 | (ch >> 6));
      out += static_cast<char>(0x80 | (ch & 0x3F));
    }
  }
  return out;
}

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

Json core_json(const CoreScore& cs, int id, double now) {
  uint64_t in_request = get(cs.in_request);
  Json c = {{"id", id},
            {"requests", get(cs.requests)},
            {"static_requests", 0},
            {"routed_requests", 0},
            {"offloaded_requests", 0},
            {"write_errors", get(cs.write_errors)},
            {"read_errors", get(cs.read_errors)},
            {"in_request", in_request},
            {"vars", Json::array()},
            {"req_info", Json::object()}};
  if (in_request) {
    uint32_t len =
        std::min<uint32_t>(cs.request_text_len.load(std::memory_order_acquire), kRequestTextBytes);
    std::string_view text(cs.request_text, len);
    size_t sp = text.find(' ');
    if (sp != std::string_view::npos) {
      c["vars"].push_back(latin1("REQUEST_METHOD=" + std::string(text.substr(0, sp))));
      c["vars"].push_back(latin1("REQUEST_URI=" + std::string(text.substr(sp + 1))));
    }
    // The start as unix time: now minus the request's age on the monotonic clock, to the
    // microsecond.
    uint64_t start = get(cs.start_ns), mono = monotonic_ns();
    double age = mono > start ? static_cast<double>(mono - start) / 1e9 : 0;
    c["req_info"]["request_start"] = std::round((now - age) * 1e6) / 1e6;
  }
  return c;
}

Json worker_json(const WorkerView& w, double now) {
  ScoreTotals t = w.score ? StatsBoard::totals(*w.score, w.core_detail) : ScoreTotals{};
  Json apps = Json::array();
  if (w.pid > 0) {
    apps.push_back({{"id", 0},
                    {"modifier1", 0},
                    {"mountpoint", ""},
                    {"startup_time", 0},
                    {"requests", t.requests},
                    {"exceptions", t.exceptions},
                    {"chdir", ""}});
  }
  Json cores = Json::array();
  // The master's own bounds only: the slot's core_detail field is the worker's to write.
  int listed =
      w.score ? static_cast<int>(std::min<int64_t>(std::max(w.cores, 0), w.core_detail)) : 0;
  for (int c = 0; c < listed; ++c) cores.push_back(core_json(w.score->cores()[c], c, now));
  return {{"id", w.id},
          {"pid", w.pid},
          {"accepting", w.accepting ? 1 : 0},
          {"requests", t.requests},
          {"delta_requests", w.delta_requests},
          {"exceptions", t.exceptions},
          {"harakiri_count", t.harakiri},
          {"signals", 0},
          {"signal_queue", 0},
          {"status", t.in_flight > 0 ? "busy" : "idle"},
          {"rss", w.rss},
          {"vsz", w.vsz},
          {"running_time", t.running_time_us},
          {"last_spawn", static_cast<int64_t>(w.last_spawn)},
          {"respawn_count", w.respawn_count},
          {"tx", t.tx},
          {"avg_rt", w.score ? get(w.score->avg_rt_us) : 0},
          {"apps", std::move(apps)},
          {"cores", std::move(cores)}};
}

}  // namespace

std::string stats_json(const StatsSnapshot& s) {
  uint64_t total_queue = 0;
  for (const SocketView& so : s.sockets) total_queue += so.queue;
  Json sockets = Json::array();
  for (const SocketView& so : s.sockets) {
    sockets.push_back({{"name", latin1(so.name)},
                       {"proto", so.proto},
                       {"queue", so.queue},
                       {"max_queue", so.max_queue},
                       {"shared", 0},
                       {"can_offload", 0}});
  }
  Json workers = Json::array();
  for (const WorkerView& w : s.workers) workers.push_back(worker_json(w, s.now));
  Json doc = {{"version", AIOWSGI_VERSION},
              {"listen_queue", total_queue},
              {"listen_queue_errors", s.listen_queue_errors},
              {"signal_queue", 0},
              {"load", total_queue},
              {"pid", s.pid},
              {"uid", s.uid},
              {"gid", s.gid},
              {"cwd", latin1(s.cwd)},
              {"locks", Json::array()},
              {"sockets", std::move(sockets)},
              {"workers", std::move(workers)}};
  return doc.dump(-1, ' ', /*ensure_ascii=*/true) + "\n";
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

}  // namespace aiowsgi::master
