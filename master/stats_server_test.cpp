#include "master/stats_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace aiowsgi::master {
namespace {

TEST(StatsJson, QuoteEscapesWhatJsonRequires) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("\n\t\x01"), "\"\\n\\t\\u0001\"");
  EXPECT_EQ(json_quote("\xe9"), "\"\\u00e9\"");
}

TEST(StatsJson, DocumentHasTheUwsgiLayout) {
  StatsBoard board;
  ASSERT_TRUE(StatsBoard::create(2, 2, &board).ok());
  WorkerScore* w = board.worker(board.claim());
  score_request_begin(w, 1, "GET", "/slow", 0);
  StatsSnapshot s;
  s.pid = 42;
  s.cwd = "/srv/\"app\"";
  s.now = 1000;
  s.sockets.push_back({"127.0.0.1:80", "http", 3, 128});
  WorkerView v;
  v.id = 1;
  v.pid = 43;
  v.accepting = true;
  v.cores = 2;
  v.score = w;
  v.core_detail = board.core_detail();
  s.workers.push_back(v);
  std::string doc = stats_json(s);
  for (const char* key :
       {"\"version\":", "\"listen_queue\":3", "\"load\":3", "\"pid\":42", "\"locks\":[]",
        "\"cwd\":\"/srv/\\\"app\\\"\"", "\"max_queue\":128", "\"status\":\"busy\"",
        "\"in_request\":1", "\"REQUEST_URI=/slow\"", "\"request_start\":", "\"req_info\":{}",
        "\"respawn_count\":0", "\"avg_rt\":0", "\"apps\":[{"}) {
    EXPECT_NE(doc.find(key), std::string::npos) << key << " in " << doc;
  }
  EXPECT_EQ(doc.back(), '\n');
}

// A worker writes its own slot: whatever it puts there (a bug, or code that took the worker
// over), the master's readers stay within the slot the master mapped.
TEST(StatsJson, HostileSlotValuesStayInBounds) {
  StatsBoard board;
  ASSERT_TRUE(StatsBoard::create(2, 3, &board).ok());
  WorkerScore* w = board.worker(board.claim());
  WorkerScore* neighbour = board.worker(board.claim());
  // The next slot's records hold a marker an out-of-bounds read would show.
  for (uint32_t c = 0; c <= board.core_detail(); ++c) {
    CoreScore& cs = neighbour->cores()[c];
    cs.requests.store(777777);
    cs.in_request.store(1);
    std::memcpy(cs.request_text, "GET /neighbour", 14);
    cs.request_text_len.store(14);
  }
  w->core_detail = 0xFFFFFFFFu;  // would make every loop run off the board
  w->running_core.store(0x7FFFFFFF);
  w->in_flight.store(~uint64_t{0});
  for (uint32_t c = 0; c <= board.core_detail(); ++c) {
    CoreScore& cs = w->cores()[c];
    cs.in_request.store(1);
    cs.request_text_len.store(0xFFFFFFFFu);  // longer than the text buffer
    std::memset(cs.request_text, 'A', kRequestTextBytes);
    cs.request_text[3] = ' ';
  }
  StatsSnapshot s;
  WorkerView v;
  v.id = 1;
  v.pid = 43;
  v.cores = 1000;  // configured more than the board details: the board's bound wins
  v.score = w;
  v.core_detail = board.core_detail();
  s.workers.push_back(v);
  std::string doc = stats_json(s);
  EXPECT_EQ(doc.find("neighbour"), std::string::npos);
  EXPECT_EQ(doc.find("777777"), std::string::npos);
  EXPECT_NE(doc.find("\"id\":2,\"requests\""), std::string::npos);  // cores 0..2 listed
  EXPECT_EQ(doc.find("\"id\":3,\"requests\""), std::string::npos);  // and no more
  // Request texts are cut at the buffer's size, whatever length the slot claims.
  std::string uri = "\"REQUEST_URI=" + std::string(kRequestTextBytes - 4, 'A') + "\"";
  EXPECT_NE(doc.find(uri), std::string::npos) << doc;
  std::string text = metrics_text(s);
  EXPECT_NE(text.find("aiowsgi_requests_total"), std::string::npos);
  // One record too many would be the neighbour's first.
  w->core_detail = board.core_detail() + 1;
  doc = stats_json(s);
  EXPECT_EQ(doc.find("neighbour"), std::string::npos);
  EXPECT_EQ(doc.find("\"id\":3,\"requests\""), std::string::npos);
  w->running_core.store(static_cast<int32_t>(board.core_detail()) + 1);
  EXPECT_EQ(view(*w, board.core_detail()).suspect.find("neighbour"), std::string::npos);

  // A negative core and every index in and past the detailed range.
  for (int32_t running : {-2, -1, 0, 2, 3, 4, 1 << 20, 0x7FFFFFFF}) {
    w->running_core.store(running);
    ScoreView sv = view(*w, board.core_detail());
    EXPECT_EQ(sv.suspect.find("neighbour"), std::string::npos) << running;
    EXPECT_LE(sv.suspect.size(), kRequestTextBytes) << running;
    if (running >= 3) {  // past the detailed cores: the core is named, no request read
      EXPECT_EQ(sv.suspect_core, running);
      EXPECT_TRUE(sv.suspect.empty());
    } else if (running >= 0) {
      EXPECT_EQ(sv.suspect_core, running);
      EXPECT_EQ(sv.suspect, "AAA " + std::string(kRequestTextBytes - 4, 'A'));
    } else {
      EXPECT_GE(sv.suspect_core, 0);
      EXPECT_LT(sv.suspect_core, 3);
    }
  }
  ScoreTotals t = StatsBoard::totals(*w, board.core_detail());
  EXPECT_EQ(t.requests, 0u);
}

TEST(StatsMetrics, RoutesOnlyGetMetrics) {
  EXPECT_EQ(route_metrics_request("GET /metr"), MetricsRoute::kIncomplete);
  EXPECT_EQ(route_metrics_request("GET /metrics HTTP/1.1\r\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("GET /metrics?x=1 HTTP/1.0\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("HEAD /metrics HTTP/1.1\r\n"), MetricsRoute::kMetricsHead);
  EXPECT_EQ(route_metrics_request("POST /metrics HTTP/1.1\r\n"), MetricsRoute::kBadMethod);
  EXPECT_EQ(route_metrics_request("GET / HTTP/1.1\r\n"), MetricsRoute::kNotFound);
  EXPECT_EQ(route_metrics_request("garbage\r\n"), MetricsRoute::kBad);
  EXPECT_EQ(route_metrics_request(std::string(9000, 'x')), MetricsRoute::kBad);
}

TEST(StatsMetrics, CountersIncludeRetiredWorkers) {
  StatsBoard board;
  ASSERT_TRUE(StatsBoard::create(2, 2, &board).ok());
  int gone = board.claim();
  score_request_begin(board.worker(gone), 0, "GET", "/", 0);
  score_request_end(board.worker(gone), 0, 200, 0, 0, 0);
  board.release(gone);
  WorkerScore* live = board.worker(board.claim());
  score_request_begin(live, 0, "GET", "/", 0);
  score_request_end(live, 0, 503, 0, 1, 0);
  StatsSnapshot s;
  s.retired = board.retired();
  WorkerView v;
  v.id = 1;
  v.pid = 7;
  v.cores = 2;
  v.score = live;
  v.core_detail = board.core_detail();
  v.rss = 4096;
  s.workers.push_back(v);
  s.reloads = 2;
  std::string text = metrics_text(s);
  for (const char* line :
       {"aiowsgi_requests_total{status=\"2xx\"} 1\n", "aiowsgi_requests_total{status=\"5xx\"} 1\n",
        "aiowsgi_exceptions_total 1\n", "aiowsgi_request_duration_seconds_count 2\n",
        "aiowsgi_request_duration_seconds_bucket{le=\"+Inf\"} 2\n", "aiowsgi_reloads_total 2\n",
        "aiowsgi_worker_rss_bytes{worker=\"1\"} 4096\n", "# TYPE aiowsgi_requests_total counter\n",
        "# TYPE aiowsgi_request_duration_seconds histogram\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST(StatsMetrics, ListenQueueOfATcpListener) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 7), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int clients[2];
  for (int& c : clients) {
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  uint64_t q = 0, max = 0;
  listen_queue(fd, &q, &max);
  EXPECT_EQ(q, 2u);
  EXPECT_EQ(max, 7u);
  for (int c : clients) close(c);
  close(fd);
}

TEST(StatsMetrics, MemoryOfThisProcess) {
  uint64_t rss = 0, vsz = 0;
  read_memory(getpid(), &rss, &vsz);
  EXPECT_GT(rss, 0u);
  EXPECT_GE(vsz, rss);
  read_memory(0, &rss, &vsz);
  EXPECT_EQ(rss, 0u);
}

}  // namespace
}  // namespace aiowsgi::master
