// The stats JSON and /metrics documents from hand-built snapshots.
#include "master/stats_document.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace aiowsgi::master {
namespace {

TEST(StatsJson, StringsEscapeWhatJsonRequires) {
  StatsSnapshot s;
  s.cwd = "plain";
  EXPECT_NE(stats_json(s).find("\"cwd\":\"plain\""), std::string::npos);
  s.cwd = "a\"b\\c";
  EXPECT_NE(stats_json(s).find("\"cwd\":\"a\\\"b\\\\c\""), std::string::npos);
  s.cwd = "\n\t\x01";
  EXPECT_NE(stats_json(s).find("\"cwd\":\"\\n\\t\\u0001\""), std::string::npos);
  // Bytes that are not UTF-8 are taken as Latin-1, never dropped or replaced.
  s.cwd = std::string(1, '\xe9');  // not = "\xe9": GCC 12 -O3 false -Wrestrict
  EXPECT_NE(stats_json(s).find("\"cwd\":\"\\u00e9\""), std::string::npos) << stats_json(s);
}

// The exact bytes readers of the document have always been given (key order included).
TEST(StatsJson, DocumentBytesAreStable) {
  StatsBoard board;
  ASSERT_TRUE(StatsBoard::create(2, 1, &board).ok());
  StatsSnapshot s;
  s.pid = 42;
  s.uid = 1;
  s.gid = 2;
  s.cwd = "/srv/\xe9\x7f";
  s.sockets.push_back({"127.0.0.1:80", "http", 3, 128});
  WorkerView v;
  v.id = 1;
  v.pid = 43;
  v.accepting = true;
  v.cores = 1;
  v.score = board.worker(board.claim());
  v.core_detail = board.core_detail();
  v.rss = 4096;
  v.vsz = 8192;
  v.last_spawn = 1000.9;
  v.respawn_count = 2;
  v.delta_requests = 5;
  s.workers.push_back(v);
  WorkerView empty;  // a slot waiting for its respawn
  empty.id = 2;
  s.workers.push_back(empty);
  EXPECT_EQ(stats_json(s),
            std::string("{\"version\":\"") + AIOWSGI_VERSION +
                "\",\"listen_queue\":3,\"listen_queue_errors\":0,\"signal_queue\":0,\"load\":3,"
                "\"pid\":42,\"uid\":1,\"gid\":2,\"cwd\":\"/srv/\\u00e9\\u007f\",\"locks\":[],"
                "\"sockets\":[{\"name\":\"127.0.0.1:80\",\"proto\":\"http\",\"queue\":3,"
                "\"max_queue\":128,\"shared\":0,\"can_offload\":0}],\"workers\":[{\"id\":1,"
                "\"pid\":43,\"accepting\":1,\"requests\":0,\"delta_requests\":5,\"exceptions\":0,"
                "\"harakiri_count\":0,\"signals\":0,\"signal_queue\":0,\"status\":\"idle\","
                "\"rss\":4096,\"vsz\":8192,\"running_time\":0,\"last_spawn\":1000,"
                "\"respawn_count\":2,\"tx\":0,\"avg_rt\":0,\"apps\":[{\"id\":0,\"modifier1\":0,"
                "\"mountpoint\":\"\",\"startup_time\":0,\"requests\":0,\"exceptions\":0,"
                "\"chdir\":\"\"}],\"cores\":[{\"id\":0,\"requests\":0,\"static_requests\":0,"
                "\"routed_requests\":0,\"offloaded_requests\":0,\"write_errors\":0,"
                "\"read_errors\":0,\"in_request\":0,\"vars\":[],\"req_info\":{}}]},{\"id\":2,"
                "\"pid\":0,\"accepting\":0,\"requests\":0,\"delta_requests\":0,\"exceptions\":0,"
                "\"harakiri_count\":0,\"signals\":0,\"signal_queue\":0,\"status\":\"idle\","
                "\"rss\":0,\"vsz\":0,\"running_time\":0,\"last_spawn\":0,\"respawn_count\":0,"
                "\"tx\":0,\"avg_rt\":0,\"apps\":[],\"cores\":[]}]}\n");
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

}  // namespace
}  // namespace aiowsgi::master
