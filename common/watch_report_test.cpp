// Watch reports: packing, a real round trip beside plain messages, and the master's checks on
// payloads a broken or hostile worker could send.
#include "common/watch_report.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

namespace aiowsgi {
namespace {

using std::string_literals::operator""s;

TEST(WatchReport, PackDropsUnusablePathsAndSplitsLongLists) {
  std::vector<std::string> paths = {"/a/b.py", "", "rel.py", "/c\nd.py", std::string(5000, '/')};
  std::vector<std::string> packed = pack_watch_payloads(paths);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(packed[0], "/a/b.py\0"s);

  std::vector<std::string> many;
  for (int i = 0; i < 2000; ++i) many.push_back("/srv/app/module_" + std::to_string(i) + ".py");
  packed = pack_watch_payloads(many);
  ASSERT_GT(packed.size(), 1u);
  size_t total = 0;
  std::vector<std::string> back;
  for (const std::string& p : packed) {
    EXPECT_LE(p.size(), kMaxWatchPayload);
    size_t rejected = 1;
    for (std::string& s : parse_watch_payload(p, &rejected)) back.push_back(std::move(s));
    EXPECT_EQ(rejected, 0u);
    total += p.size();
  }
  EXPECT_EQ(back, many);
  EXPECT_GT(total, kMaxWatchPayload);
}

TEST(WatchReport, ParseRejectsGarbage) {
  size_t rejected = 0;
  auto ok = parse_watch_payload("/x/y.py\0/z.py\0"s, &rejected);
  EXPECT_EQ(ok, (std::vector<std::string>{"/x/y.py", "/z.py"}));
  EXPECT_EQ(rejected, 0u);
  // Relative, empty, control bytes, too long, and a last path without its NUL.
  std::string bad =
      "rel\0\0/a\tb\0"s + "/" + std::string(kMaxWatchPath, 'x') + '\0' + "/fine.py\0/cut"s;
  ok = parse_watch_payload(bad, &rejected);
  EXPECT_EQ(ok, (std::vector<std::string>{"/fine.py"}));
  EXPECT_EQ(rejected, 5u);
  EXPECT_TRUE(parse_watch_payload("", &rejected).empty());
  EXPECT_EQ(rejected, 0u);
}

TEST(WatchReport, RoundTripBesidePlainMessages) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  ControlMessage ready;
  ready.type = ControlType::kReady;
  ready.worker_id = 2;
  ASSERT_TRUE(send_message(w.get(), ready).ok());
  std::string payload = pack_watch_payloads({"/srv/app.py", "/srv/helper.py"}).at(0);
  ASSERT_EQ(send_watch_report(w.get(), 2, payload), 0);
  ASSERT_EQ(send_watch_report(w.get(), 2, std::string(kMaxWatchPayload + 1, 'x')), EMSGSIZE);

  ControlMessage got;
  std::string files = "stale";
  ASSERT_EQ(recv_control_or_files(m.get(), &got, &files), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kReady);
  EXPECT_TRUE(files.empty());
  ASSERT_EQ(recv_control_or_files(m.get(), &got, &files), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kWatchFiles);
  EXPECT_EQ(got.worker_id, 2u);
  EXPECT_EQ(files, payload);
  EXPECT_EQ(recv_control_or_files(m.get(), &got, &files), RecvResult::kAgain);
}

TEST(WatchReport, MalformedDatagramsAreSkipped) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  // A heartbeat with a tail, a report whose length field lies, a report without payload, a
  // short datagram, an oversized one: all skipped; the good message after them arrives.
  ControlMessage hb;
  hb.type = ControlType::kHeartbeat;
  std::string with_tail(reinterpret_cast<const char*>(&hb), sizeof hb);
  with_tail += "/x.py";
  ASSERT_EQ(::send(w.get(), with_tail.data(), with_tail.size(), 0), (ssize_t)with_tail.size());
  ControlMessage rep;
  rep.type = ControlType::kWatchFiles;
  rep.requests = 99;
  std::string lying(reinterpret_cast<const char*>(&rep), sizeof rep);
  lying += "/x.py\0"s;
  ASSERT_EQ(::send(w.get(), lying.data(), lying.size(), 0), (ssize_t)lying.size());
  rep.requests = 0;
  ASSERT_EQ(::send(w.get(), &rep, sizeof rep, 0), (ssize_t)sizeof rep);
  ASSERT_EQ(::send(w.get(), "tiny", 4, 0), 4);
  std::string huge(sizeof(ControlMessage) + kMaxWatchPayload + 100, '/');
  std::memcpy(huge.data(), &rep, sizeof rep);
  ASSERT_EQ(::send(w.get(), huge.data(), huge.size(), 0), (ssize_t)huge.size());
  ControlMessage ready;
  ready.type = ControlType::kReady;
  ASSERT_TRUE(send_message(w.get(), ready).ok());

  ControlMessage got;
  std::string files;
  ASSERT_EQ(recv_control_or_files(m.get(), &got, &files), RecvResult::kMessage);
  EXPECT_EQ(got.type, ControlType::kReady);
  EXPECT_EQ(recv_control_or_files(m.get(), &got, &files), RecvResult::kAgain);
}

TEST(WatchReport, PlainReceiverSkipsReports) {
  Result<ControlPair> pair = make_control_pair();
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  UniqueFd& m = pair.value().master_end;
  UniqueFd& w = pair.value().worker_end;
  ASSERT_EQ(send_watch_report(w.get(), 1, "/a.py\0"s), 0);
  ControlMessage got;
  EXPECT_EQ(recv_control(m.get(), &got), RecvResult::kAgain);
}

}  // namespace
}  // namespace aiowsgi
