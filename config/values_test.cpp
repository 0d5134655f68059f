// Tests for the checks on values read from a file: wrong types, ranges, seconds, addresses,
// how errors echo what was written, and that all errors come back in line order.
#include "config/values.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/command_line.h"
#include "config/config.h"
#include "config/keys.h"
#include "config/virtualenv.h"
#include "tests/unit/config_fixture.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

TEST_F(ConfigTest, UnknownKeyFarFromAnyNameSuggestsNothing) {
  std::string e = error_for(std::string(kMinimal) + "\n[limits]\nzebra = 2\n");
  EXPECT_NE(e.find("[limits] zebra: unknown key"), std::string::npos) << e;
  EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;
}

TEST_F(ConfigTest, TopLevelKeyIsUnknown) {
  std::string e = error_for("workers = 2\n" + std::string(kMinimal));
  EXPECT_EQ(e.rfind(toml_path() + ":1:1: workers: unknown key", 0), 0u) << e;
}

// Builds a file with |line| in [|table|] and a valid listener and app around it.
std::string with_line(const std::string& table, const std::string& line) {
  std::string toml = "[" + table + "]\n" + line + "\n";
  const std::string listen = "listen = [\":21000\"]\n";
  const std::string app = "wsgi_file = \"app.py\"\n";
  if (table == "app") return toml + app + "[server]\n" + listen;
  if (table == "server")
    return toml + (line.rfind("listen", 0) == 0 ? "" : listen) + "[app]\n" + app;
  return toml + "[server]\n" + listen + "[app]\n" + app;
}

TEST_F(ConfigTest, WrongType) {
  EXPECT_EQ(error_for("[server]\nlisten = [\":21000\"]\nworkers = \"two\"\n[app]\nwsgi_file = "
                      "\"app.py\"\n"),
            toml_path() + ":3:11: [server] workers: expected integer, got string");
  struct Case {
    std::string table, line, want;
  } cases[] = {
      {"app", "uwsgi_compat = \"yes\"", "[app] uwsgi_compat: expected boolean, got string"},
      {"app", "python_path = \"lib\"", "[app] python_path: expected array of strings, got string"},
      {"app", "python_path = [3]", "[app] python_path: expected array of strings, got integer"},
      {"app", "env = { A = 1 }", "[app] env.A: expected string, got integer"},
      {"app", "env = \"A=1\"", "[app] env: expected table of strings, got string"},
      {"app", "callable = 3", "[app] callable: expected string, got integer"},
      {"server", "workers = 2.0", "[server] workers: expected integer, got float"},
      {"server", "graceful_timeout = \"30s\"",
       "[server] graceful_timeout: expected number of seconds, got string"},
      {"server", "listen = \":21000\"", "[server] listen: expected array of strings, got string"},
      {"server", "listen = [21000]", "[server] listen: expected array of strings, got integer"},
      {"server", "reuse_port = 1", "[server] reuse_port: expected boolean, got integer"},
      {"server", "preload = \"yes\"", "[server] preload: expected boolean, got string"},
      {"log", "access = 1", "[log] access: expected boolean, got integer"},
      {"stats", "listen = 21010", "[stats] listen: expected string, got integer"},
      {"limits", "max_body_bytes = 1e6", "[limits] max_body_bytes: expected integer, got float"},
      {"limits", "harakiri = 1979-05-27",
       "[limits] harakiri: expected number of seconds, got date"},
  };
  for (const auto& c : cases) {
    std::string e = error_for(with_line(c.table, c.line));
    EXPECT_EQ(e.rfind(toml_path() + ":2:", 0), 0u) << e;
    EXPECT_NE(e.find(c.want), std::string::npos) << e << "\nwanted: " << c.want;
  }
  EXPECT_EQ(error_for("log = 3\n" + std::string(kMinimal)),
            toml_path() + ":1:7: [log]: expected table, got integer");
}

TEST_F(ConfigTest, OutOfRange) {
  EXPECT_EQ(
      error_for("[server]\nlisten = [\":21000\"]\nworkers = 0\n[app]\nwsgi_file = \"app.py\"\n"),
      toml_path() + ":3:11: [server] workers = 0: must be 1..1024");
  struct Case {
    std::string table, line, want;
  } cases[] = {
      {"server", "workers = 1025", "[server] workers = 1025: must be 1..1024"},
      {"server", "cores = 0", "[server] cores = 0: must be 1..100000"},
      {"server", "cores = 100001", "[server] cores = 100001: must be 1..100000"},
      {"server", "backlog = 65536", "[server] backlog = 65536: must be 1..65535"},
      {"server", "graceful_timeout = -1", "[server] graceful_timeout = -1: must be 0..10000000"},
      {"server", "user = \"no-such-user-aiowsgi\"", "no such user"},
      {"server", "group = \"no-such-group-aiowsgi\"", "no such group"},
      // 2^32 used to wrap to uid 0 and keep the server running as root.
      {"server", "user = \"4294967296\"",
       "[server] user = \"4294967296\": uid out of range: a number must be 0..4294967294"},
      {"server", "user = \"4294967295\"", "uid out of range"},
      {"server", "user = \"99999999999999999999999\"", "uid out of range"},
      {"server", "group = \"4294967296\"",
       "[server] group = \"4294967296\": gid out of range: a number must be 0..4294967294"},
      {"server", "user = \"-1\"", "[server] user = \"-1\": no such user"},
      {"server", "user = \"0abc\"", "[server] user = \"0abc\": no such user"},
      {"server", "group = \"-5\"", "[server] group = \"-5\": no such group"},
      {"limits", "harakiri = -0.5", "[limits] harakiri = -0.5: must be 0..10000000"},
      {"limits", "keepalive_timeout = 0", "[limits] keepalive_timeout = 0: must be > 0"},
      {"limits", "header_timeout = inf", "[limits] header_timeout = inf: must be > 0"},
      {"limits", "max_requests = -1", "[limits] max_requests = -1: must be >= 0"},
      {"limits", "reload_on_rss_mb = -1", "[limits] reload_on_rss_mb = -1: must be >= 0"},
      {"limits", "max_header_bytes = 1023",
       "[limits] max_header_bytes = 1023: must be 1024..16777216"},
      {"limits", "max_header_bytes = 16777217", "must be 1024..16777216"},
      {"limits", "max_header_fields = 0", "[limits] max_header_fields = 0: must be 1..32768"},
      {"limits", "max_header_fields = 32769", "must be 1..32768"},
      {"limits", "max_header_fields = 1.5", "[limits] max_header_fields"},
      {"limits", "body_timeout = -1", "[limits] body_timeout = -1: must be 0..10000000"},
      {"limits", "body_timeout = \"60\"", "[limits] body_timeout"},
      {"limits", "max_body_bytes = -1", "[limits] max_body_bytes = -1: must be >= 0"},
      {"log", "level = \"verbose\"",
       "[log] level = \"verbose\": must be one of \"trace\", \"debug\", \"info\", \"warn\", "
       "\"error\""},
      {"log", "format = \"xml\"", "[log] format = \"xml\": must be one of \"text\", \"json\""},
      {"app", "loop = \"trio\"", "[app] loop = \"trio\": must be one of \"asyncio\", \"uvloop\""},
      {"app", "callable = \"not a name\"",
       "[app] callable = \"not a name\": must be a Python name"},
      {"app", "chdir = \"missing-dir\"", "no such directory: " + path("missing-dir")},
      {"app", "env = { \"A=B\" = \"x\" }", "not a valid environment variable name"},
      {"app", "python_path = [\"\"]", "[app] python_path = \"\": empty path"},
      {"server", "forwarded_allow_ips = [\"10.0.0.0/33\"]",
       "[server] forwarded_allow_ips = \"10.0.0.0/33\": '10.0.0.0/33' is not an IP address, a "
       "network (10.0.0.0/8, fd00::/8) or \"*\""},
      {"server", "forwarded_allow_ips = [\"localhost\"]", "is not an IP address"},
      {"server", "forwarded_allow_ips = \"10.0.0.1, localhost\"",
       "[server] forwarded_allow_ips = \"localhost\": 'localhost' is not an IP address"},
      {"app", "mount = \"app\"",
       "[app] mount = \"app\": must be a URL path like \"/app\" (no %-escapes, spaces or \"//\")"},
      {"app", "mount = \"/a b\"", "must be a URL path"},
      {"app", "mount = \"/a%20b\"", "must be a URL path"},
      // Below the worker's timer period (SecondsBelowTheTimerPeriodAreRefused).
      {"limits", "harakiri = 1e-9",
       "[limits] harakiri = 0.000000001: must be at least 0.25 seconds (timeouts are checked "
       "every 0.25 s), or 0"},
      {"limits", "harakiri = 0.2", "[limits] harakiri = 0.2: must be at least 0.25 seconds"},
      {"limits", "body_timeout = 0.1", "[limits] body_timeout = 0.1: must be at least 0.25"},
      {"limits", "keepalive_timeout = 0.001",
       "[limits] keepalive_timeout = 0.001: must be at least 0.25 seconds (timeouts are "
       "checked every 0.25 s)"},
      {"limits", "header_timeout = 1e-300",
       "[limits] header_timeout = 1e-300: must be at least 0.25 seconds"},
      {"server", "graceful_timeout = 0.01",
       "[server] graceful_timeout = 0.01: must be at least 0.25 seconds"},
  };
  for (const auto& c : cases) {
    std::string e = error_for(with_line(c.table, c.line));
    EXPECT_EQ(e.rfind(toml_path() + ":2:", 0), 0u) << e;
    EXPECT_NE(e.find(c.want), std::string::npos) << e << "\nwanted: " << c.want;
  }
}

// A worker checks its timeouts every 0.25 s (kTimerTickSeconds): a shorter limit is refused
// with the minimum (OutOfRange), 0 keeps its meaning, and the minimum itself is accepted.
TEST_F(ConfigTest, SecondsBelowTheTimerPeriodAreRefused) {
  // keepalive_timeout cannot be 0, so its message offers no "or 0".
  EXPECT_EQ(error_for(with_line("limits", "keepalive_timeout = 0.1")).find(", or 0"),
            std::string::npos);
  Config cfg = load_file_ok(std::string(kMinimal) +
                            "[limits]\nharakiri = 0.25\nbody_timeout = 0\nheader_timeout = "
                            "0.25\nkeepalive_timeout = 0.25\n");
  EXPECT_DOUBLE_EQ(cfg.limits.harakiri, 0.25);
  EXPECT_DOUBLE_EQ(cfg.limits.body_timeout, 0);
  cfg = load_file_ok(std::string(kMinimal) + "[limits]\nharakiri = 0\n");
  EXPECT_DOUBLE_EQ(cfg.limits.harakiri, 0);
}

// A value far out of range is echoed in a short form, not with its hundreds of digits.
TEST_F(ConfigTest, HugeAndTinyFloatsAreEchoedShort) {
  EXPECT_EQ(error_for(with_line("limits", "body_timeout = 1e308")),
            toml_path() + ":2:16: [limits] body_timeout = 1e+308: must be 0..10000000 seconds");
  EXPECT_EQ(error_for(with_line("limits", "harakiri = -1.7976931348623157e308")),
            toml_path() +
                ":2:12: [limits] harakiri = -1.7976931348623157e+308: must be 0..10000000 seconds");
  EXPECT_EQ(format_double(1e7), "10000000");
  EXPECT_EQ(format_double(2.5), "2.5");
  EXPECT_EQ(format_double(0.25), "0.25");
  EXPECT_EQ(format_double(1e-9), "0.000000001");
  EXPECT_EQ(format_double(1e-300), "1e-300");
  EXPECT_EQ(format_double(1e308), "1e+308");
}

TEST_F(ConfigTest, ErrorsEchoingControlCharactersStayOneLine) {
  // A value, a path, a host and a key name with escaped control characters in the file: each
  // error shows them as the file writes them, on one line (logs and terminals stay readable).
  const struct {
    std::string text, want;
  } cases[] = {
      {"[app]\nmodule = \"a:b c\\n = \"\n",
       "[app] module = \"a:b c\\n = \": the callable after ':' must be a Python name"},
      {"[server]\nlisten = [\"a\\nb:80\"]\n", "bad host 'a\\nb'"},
      {"[app]\nchdir = \"miss\\u001bing\"\n", "no such directory: "},
      {"[server]\n\"we\\tird\" = 1\n", "[server] we\\tird: unknown key"},
      {"[app]\nmodule = \"a\\\"b\\\\c\"\n", "[app] module = \"a\\\"b\\\\c\""},
  };
  for (const auto& c : cases) {
    std::vector<std::string> errors;
    Config cfg;
    EXPECT_FALSE(load_config_from_string(c.text, toml_path(), &cfg, &errors)) << c.text;
    ASSERT_FALSE(errors.empty()) << c.text;
    bool found = false;
    for (const std::string& e : errors) {
      for (unsigned char ch : e) EXPECT_TRUE(ch >= 0x20 && ch != 0x7f) << e;
      found = found || e.find(c.want) != std::string::npos;
    }
    EXPECT_TRUE(found) << c.text << "\nwanted: " << c.want << "\nfirst: " << errors[0];
  }
}

TEST_F(ConfigTest, BadAddresses) {
  std::string e = error_for(
      "[server]\nlisten = [\":21000\",\n  \"foo bar:80\"]\n[app]\nwsgi_file = \"app.py\"\n");
  EXPECT_EQ(e.rfind(toml_path() + ":3:3: [server] listen = \"foo bar:80\": bad host 'foo bar'", 0),
            0u)
      << e;
  EXPECT_NE(error_for(std::string(kMinimal) + "[stats]\nlisten = \"127.0.0.1\"\n")
                .find(":6:10: [stats] listen = \"127.0.0.1\": missing port"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "[stats]\nmetrics = \"unix:/tmp/m.sock\"\n")
                .find("[stats] metrics = \"unix:/tmp/m.sock\": must be HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_for("[server]\nuwsgi_listen = [\"127.0.0.1:70000\"]\n[app]\nwsgi_file = "
                      "\"app.py\"\n")
                .find(":2:17: [server] uwsgi_listen = \"127.0.0.1:70000\": port must be"),
            std::string::npos);
}

TEST_F(ConfigTest, AllErrorsCollectedInLineOrder) {
  std::vector<std::string> errors = errors_for(R"([server]
workers = 0
cores = "many"
listen = [":21000"]
zzz = 1
[app]
wsgi_file = "app.py"
loop = "x"
[log]
level = 3
)");
  ASSERT_EQ(errors.size(), 5u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find(":2:11: [server] workers = 0"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find(":3:9: [server] cores: expected integer"), std::string::npos);
  EXPECT_NE(errors[2].find(":5:1: [server] zzz: unknown key"), std::string::npos);
  EXPECT_NE(errors[3].find(":8:8: [app] loop"), std::string::npos);
  EXPECT_NE(errors[4].find(":10:9: [log] level: expected string"), std::string::npos);
}

}  // namespace
}  // namespace aiowsgi::config
