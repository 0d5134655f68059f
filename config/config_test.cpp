#include "config/config.h"

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
#include "config/keys.h"
#include "config/values.h"
#include "config/virtualenv.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

// A mutable argv for parse_command_line, with "aiowsgi-master" as argv[0].
class Argv {
 public:
  explicit Argv(std::initializer_list<std::string> args) : storage_{"aiowsgi-master"} {
    storage_.insert(storage_.end(), args);
    pointers_.reserve(storage_.size() + 1);
    for (auto& s : storage_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);  // argv[argc] is NULL, as in main()
  }
  int argc() const { return static_cast<int>(storage_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> storage_;
  std::vector<char*> pointers_;
};

// Each test gets its own temporary folder holding the config file and the app it names.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aiowsgi-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    write("app.py", "def application(environ, start_response):\n    return []\n");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes |content| to dir_/|name| (creating folders) and returns the absolute path.
  std::string write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

  // Parses |args| as a command line (argv[0] added).
  CommandLine cli(std::initializer_list<std::string> args) {
    Argv argv(args);
    Result<CommandLine> out = parse_command_line(argv.argc(), argv.argv());
    EXPECT_TRUE(out.ok()) << out.status().message();
    return out.ok() ? std::move(out).value() : CommandLine();
  }

  // Loads |toml| written to server.toml, expecting failure; returns the errors.
  std::vector<std::string> errors_for(const std::string& toml) {
    CommandLine c;
    c.config_file = write("server.toml", toml);
    Config cfg;
    std::vector<std::string> errors;
    EXPECT_FALSE(load_config(c, &cfg, &errors));
    return errors;
  }

  // The single error that |toml| produces.
  std::string error_for(const std::string& toml) {
    std::vector<std::string> errors = errors_for(toml);
    EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
    return errors.empty() ? "" : errors.front();
  }

  Config load_ok(const CommandLine& c) {
    Config cfg;
    std::vector<std::string> errors;
    EXPECT_TRUE(load_config(c, &cfg, &errors)) << ::testing::PrintToString(errors);
    return cfg;
  }

  Config load_file_ok(const std::string& toml) {
    CommandLine c;
    c.config_file = write("server.toml", toml);
    return load_ok(c);
  }

  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  std::string toml_path() const { return path("server.toml"); }

  fs::path dir_;
};

constexpr const char* kMinimal = R"([server]
listen = ["127.0.0.1:21000"]
[app]
wsgi_file = "app.py"
)";

TEST_F(ConfigTest, FullFileLoadsEveryKey) {
  write("lib/.keep", "");
  write("work/.keep", "");
  Config cfg = load_file_ok(R"(# every key of SPEC.md's server.toml
[server]
listen = ["127.0.0.1:21000", ":21001", "[::1]:21002", "unix:/tmp/aiowsgi-cfg-test.sock"]
uwsgi_listen = ["127.0.0.1:21003"]
workers = 3
cores = 250
backlog = 512
reuse_port = true
pidfile = "/run/aiowsgi.pid"
user = "root"
group = "root"
graceful_timeout = 2.5

[app]
wsgi_file = "app.py"
module = ""
callable = "app"
chdir = "work"
python_path = ["lib", "/opt/extra"]
env = { DJANGO_SETTINGS_MODULE = "site.settings", MODE = "prod" }
loop = "uvloop"
uwsgi_compat = false

[limits]
harakiri = 60
max_requests = 10000
reload_on_rss_mb = 512
keepalive_timeout = 7.5
header_timeout = 3
max_header_bytes = 32768
max_header_fields = 250
body_timeout = 12.5
max_body_bytes = 1048576

[stats]
listen = "127.0.0.1:21010"
metrics = "127.0.0.1:21011"

[log]
level = "debug"
file = "/var/log/aiowsgi.log"
access = false
format = "json"
)");
  EXPECT_EQ(cfg.config_file, toml_path());
  EXPECT_EQ(cfg.server.listen, (std::vector<std::string>{"127.0.0.1:21000", ":21001", "[::1]:21002",
                                                         "unix:/tmp/aiowsgi-cfg-test.sock"}));
  EXPECT_EQ(cfg.server.uwsgi_listen, std::vector<std::string>{"127.0.0.1:21003"});
  EXPECT_EQ(cfg.server.workers, 3);
  EXPECT_EQ(cfg.server.cores, 250);
  EXPECT_EQ(cfg.server.backlog, 512);
  EXPECT_TRUE(cfg.server.reuse_port);
  EXPECT_EQ(cfg.server.pidfile, "/run/aiowsgi.pid");
  EXPECT_EQ(cfg.server.user, "root");
  EXPECT_EQ(cfg.server.group, "root");
  EXPECT_DOUBLE_EQ(cfg.server.graceful_timeout, 2.5);

  EXPECT_EQ(cfg.app.wsgi_file, path("app.py"));
  EXPECT_EQ(cfg.app.module, "");
  EXPECT_EQ(cfg.app.callable, "app");
  EXPECT_EQ(cfg.app.chdir, path("work"));
  EXPECT_EQ(cfg.app.python_path, (std::vector<std::string>{path("lib"), "/opt/extra"}));
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(cfg.app.env, (Env{{"DJANGO_SETTINGS_MODULE", "site.settings"}, {"MODE", "prod"}}));
  EXPECT_EQ(cfg.app.loop, "uvloop");
  EXPECT_FALSE(cfg.app.uwsgi_compat);

  EXPECT_DOUBLE_EQ(cfg.limits.harakiri, 60);
  EXPECT_EQ(cfg.limits.max_requests, 10000);
  EXPECT_EQ(cfg.limits.reload_on_rss_mb, 512);
  EXPECT_DOUBLE_EQ(cfg.limits.keepalive_timeout, 7.5);
  EXPECT_DOUBLE_EQ(cfg.limits.header_timeout, 3);
  EXPECT_EQ(cfg.limits.max_header_bytes, 32768);
  EXPECT_EQ(cfg.limits.max_header_fields, 250);
  EXPECT_DOUBLE_EQ(cfg.limits.body_timeout, 12.5);
  EXPECT_EQ(cfg.limits.max_body_bytes, 1048576);

  EXPECT_EQ(cfg.stats.listen, "127.0.0.1:21010");
  EXPECT_EQ(cfg.stats.metrics, "127.0.0.1:21011");

  EXPECT_EQ(cfg.log.level, "debug");
  EXPECT_EQ(cfg.log.file, "/var/log/aiowsgi.log");
  EXPECT_FALSE(cfg.log.access);
  EXPECT_EQ(cfg.log.format, "json");
}

TEST_F(ConfigTest, DefaultsForKeysNotWritten) {
  Config cfg = load_file_ok(kMinimal);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_GE(cfg.server.workers, 1);
  EXPECT_LE(cfg.server.workers, cpus > 0 ? cpus : 1);
  EXPECT_EQ(cfg.server.cores, 100);
  EXPECT_EQ(cfg.server.backlog, 1024);
  EXPECT_FALSE(cfg.server.reuse_port);
  EXPECT_FALSE(cfg.server.preload);
  EXPECT_EQ(cfg.server.pidfile, "");
  EXPECT_DOUBLE_EQ(cfg.server.graceful_timeout, 30);
  EXPECT_TRUE(cfg.server.uwsgi_listen.empty());
  EXPECT_EQ(cfg.app.callable, "application");
  EXPECT_EQ(cfg.app.loop, "asyncio");
  EXPECT_TRUE(cfg.app.uwsgi_compat);
  EXPECT_EQ(cfg.app.chdir, "");
  EXPECT_DOUBLE_EQ(cfg.limits.harakiri, 0);
  EXPECT_DOUBLE_EQ(cfg.limits.keepalive_timeout, 5);
  EXPECT_DOUBLE_EQ(cfg.limits.header_timeout, 10);
  EXPECT_EQ(cfg.limits.max_header_bytes, 65536);
  EXPECT_EQ(cfg.limits.max_header_fields, 100);
  EXPECT_DOUBLE_EQ(cfg.limits.body_timeout, 60);
  EXPECT_EQ(cfg.limits.max_body_bytes, 0);
  EXPECT_EQ(cfg.stats.listen, "");
  EXPECT_EQ(cfg.log.level, "info");
  EXPECT_EQ(cfg.log.file, "");
  EXPECT_TRUE(cfg.log.access);
  EXPECT_EQ(cfg.log.format, "text");
}

TEST_F(ConfigTest, PreloadIsASwitchFlag) {
  const std::string file = write("server.toml", kMinimal);
  EXPECT_FALSE(load_ok(cli({"-c", file})).server.preload);
  // Alone, before another option, or with an explicit value.
  EXPECT_TRUE(load_ok(cli({"-c", file, "--preload"})).server.preload);
  EXPECT_TRUE(load_ok(cli({"--preload", "-c", file})).server.preload);
  EXPECT_TRUE(load_ok(cli({"-c", file, "--preload", "true"})).server.preload);
  EXPECT_FALSE(load_ok(cli({"-c", file, "--preload=false"})).server.preload);
  std::string with_key = R"([server]
listen = ["127.0.0.1:21000"]
preload = true
[app]
wsgi_file = "app.py"
)";
  EXPECT_TRUE(load_file_ok(with_key).server.preload);
  Argv argv({"--preload=yes"});
  auto r = parse_command_line(argv.argc(), argv.argv());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not true or false"), std::string::npos)
      << r.status().message();
  EXPECT_NE(usage_text().find("--preload [true|false]"), std::string::npos);
}

TEST_F(ConfigTest, IntegersAndFloatsForSeconds) {
  Config cfg =
      load_file_ok(std::string(kMinimal) +
                   "[limits]\nharakiri = 1.5\nheader_timeout = 2\nkeepalive_timeout = 1\n");
  EXPECT_DOUBLE_EQ(cfg.limits.harakiri, 1.5);
  EXPECT_DOUBLE_EQ(cfg.limits.header_timeout, 2);
  EXPECT_DOUBLE_EQ(cfg.limits.keepalive_timeout, 1);
  cfg = load_file_ok(
      "[server]\ngraceful_timeout = 30\nlisten = [\":21000\"]\n[app]\nwsgi_file = "
      "\"app.py\"\n");
  EXPECT_DOUBLE_EQ(cfg.server.graceful_timeout, 30);
}

TEST_F(ConfigTest, SyntaxErrorHasLine) {
  std::string e = error_for("[server]\nworkers = 2\ncores = = 3\n");
  EXPECT_EQ(e.rfind(toml_path() + ":3:", 0), 0u) << e;
  EXPECT_NE(e.find("syntax error"), std::string::npos) << e;
}

TEST_F(ConfigTest, DuplicateKeyIsSyntaxError) {
  std::string e = error_for("[server]\nworkers = 2\nworkers = 3\n");
  EXPECT_EQ(e.rfind(toml_path() + ":3:", 0), 0u) << e;
}

// Found by config_fuzz: toml++ 3.3.0 hit __builtin_unreachable() (undefined behaviour, reported
// by UBSan) classifying these code points where it expects whitespace. Each must be a plain
// syntax error. The sanitizer CI build (.ci/run) runs this under UBSan.
TEST(ConfigFuzzFindings, NonAsciiWhereWhitespaceIsExpectedIsASyntaxError) {
  for (const char* text : {"[q]\xef\xbb\xbbs", "[q]\xc3\xa9\n", "x = 1 \xe3\x80\x81\n"}) {
    Config cfg;
    std::vector<std::string> errors;
    const bool ok = load_config_from_string(text, "/fuzz/server.toml", &cfg, &errors);
    EXPECT_FALSE(ok) << text;
    ASSERT_FALSE(errors.empty()) << text;
    EXPECT_EQ(errors[0].rfind("/fuzz/server.toml:1:", 0), 0u) << errors[0];
  }
  // marzer/tomlplusplus#190: the same classifier after a line-ending backslash in a string.
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_TRUE(
      load_config_from_string("[server]\nlisten = [\":8000\"]\n[app]\nmodule = \"m\"\nenv = { S = "
                              "\"\"\"\\\n\xc2\xa7\"\"\" }\n",
                              "/fuzz/server.toml", &cfg, &errors))
      << (errors.empty() ? "" : errors[0]);
  ASSERT_EQ(cfg.app.env.size(), 1u);
  EXPECT_EQ(cfg.app.env[0].second, "\xc2\xa7");
}

TEST_F(ConfigTest, UnknownTable) {
  std::string e = error_for(std::string(kMinimal) + "\n[limit]\nharakiri = 3\n");
  EXPECT_EQ(
      e,
      toml_path() +
          ":6:2: [limit]: unknown table (known: [server] [app] [limits] [stats] [log] [static])");
}

TEST_F(ConfigTest, UnknownKey) {
  std::string e =
      error_for("[server]\nlisten = [\":21000\"]\nwokers = 2\n[app]\nwsgi_file = \"app.py\"\n");
  EXPECT_EQ(e, toml_path() + ":3:1: [server] wokers: unknown key (did you mean workers?)");
}

TEST_F(ConfigTest, SocketModeIsOctal) {
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_TRUE(load_config_from_string(kMinimal, toml_path(), &cfg, &errors));
  EXPECT_EQ(cfg.server.socket_mode, 0);
  std::string base = "[server]\nlisten = [\"127.0.0.1:21000\"]\nsocket_mode = ";
  std::string app = "\n[app]\nwsgi_file = \"app.py\"\n";
  ASSERT_TRUE(load_config_from_string(base + "\"660\"" + app, toml_path(), &cfg, &errors));
  EXPECT_EQ(cfg.server.socket_mode, 0660);
  ASSERT_TRUE(load_config_from_string(base + "0o666" + app, toml_path(), &cfg, &errors));
  EXPECT_EQ(cfg.server.socket_mode, 0666);
  EXPECT_NE(error_for(base + "\"99\"" + app).find("socket_mode"), std::string::npos);
  EXPECT_NE(error_for(base + "\"1777\"" + app).find("must be an octal mode 0..777"),
            std::string::npos);
}

TEST_F(ConfigTest, IniFileLoadsThroughTheKeyTable) {
  std::string ini = write("uwsgi.ini",
                          "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:21000\n"
                          "wsgi-file = %dapp.py\nsocket = %drun.sock\nchmod-socket = 660\n"
                          "async = 7\n");
  Config cfg = load_ok(cli({"--ini", ini, "--cores", "9"}));
  EXPECT_EQ(cfg.server.listen, std::vector<std::string>{"127.0.0.1:21000"});
  EXPECT_EQ(cfg.server.uwsgi_listen, std::vector<std::string>{"unix:" + path("run.sock")});
  EXPECT_EQ(cfg.server.socket_mode, 0660);
  EXPECT_EQ(cfg.server.workers, 1);  // uWSGI's default
  EXPECT_EQ(cfg.server.cores, 9);    // the command line overrides the file
  EXPECT_EQ(cfg.app.wsgi_file, path("app.py"));
  ASSERT_EQ(cfg.notes.size(), 1u);
  EXPECT_EQ(cfg.notes[0], ini + ":2: master: no effect here: there is always a master process");
  EXPECT_EQ(cli({"--ini", ini, "--print-toml"}).action, CommandLine::Action::kPrintToml);
}

TEST_F(ConfigTest, UwsgiOptionsOnTheCommandLineAreTranslatedAsIniLines) {
  Config cfg =
      load_ok(cli({"--http", ":21000", "--wsgi-file", path("app.py"), "--master", "--processes",
                   "4", "--chmod-socket", "660", "--vacuum", "true", "--logto", path("x.log")}));
  EXPECT_EQ(cfg.server.listen, std::vector<std::string>{":21000"});
  EXPECT_EQ(cfg.server.workers, 4);
  EXPECT_EQ(cfg.server.socket_mode, 0660);
  EXPECT_EQ(cfg.app.wsgi_file, path("app.py"));
  EXPECT_EQ(cfg.notes.front(),
            "command line: master: no effect here: there is always a master process");
  // A bare --chmod-socket is uWSGI's 666; the next option is not its value.
  EXPECT_EQ(load_ok(cli({"--http", ":21000", "--wsgi-file", path("app.py"), "--chmod-socket",
                         "--master"}))
                .server.socket_mode,
            0666);
  CommandLine refused =
      cli({"--http", ":21000", "--wsgi-file", path("app.py"), "--daemonize", "x"});
  Config ignored;
  std::vector<std::string> errors;
  ASSERT_FALSE(load_config(refused, &ignored, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("command line: daemonize: aiowsgi does not fork", 0), 0u) << errors[0];
  Argv typo({"--procesess", "4"});
  auto r = parse_command_line(typo.argc(), typo.argv());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "unknown option '--procesess' (did you mean --processes?) (see --help)");
}

TEST_F(ConfigTest, IniErrorsComeTogether) {
  std::string ini = write("uwsgi.ini",
                          "[uwsgi]\nhttp-socket = 127.0.0.1:21000\nwsgi-file = %dapp.py\n"
                          "daemonize = /tmp/log\nprocesses = 0\nproceses = 2\n");
  CommandLine c;
  c.ini_file = ini;
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_FALSE(load_config(c, &cfg, &errors));
  ASSERT_EQ(errors.size(), 3u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0].rfind(ini + ":4: daemonize: aiowsgi does not fork", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1], ini + ":6: proceses: unknown option (did you mean processes?)");
  EXPECT_EQ(errors[2], ini + ":5: processes = 0: must be 1..1024");
}

TEST_F(ConfigTest, IniAndConfigTogetherIsAUsageError) {
  Argv argv({"--ini", "u.ini", "-c", "s.toml"});
  auto r = parse_command_line(argv.argc(), argv.argv());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--ini and --config both given: only one config file is read");
}

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

TEST_F(ConfigTest, MissingApp) {
  std::string e = error_for("[server]\nlisten = [\":21000\"]\n");
  EXPECT_EQ(e, toml_path() +
                   ": no app: set [app] wsgi_file or [app] module, or pass --wsgi-file / --module");
}

TEST_F(ConfigTest, BothWsgiFileAndModule) {
  std::string e = error_for(std::string(kMinimal) + "module = \"pkg.wsgi:app\"\n");
  EXPECT_EQ(e, toml_path() + ": both [app] wsgi_file and [app] module are set; keep one");
}

TEST_F(ConfigTest, MissingWsgiFile) {
  std::string e = error_for("[server]\nlisten = [\":21000\"]\n[app]\nwsgi_file = \"nope.py\"\n");
  EXPECT_EQ(e,
            toml_path() + ":4:13: [app] wsgi_file = \"nope.py\": no such file: " + path("nope.py"));
  fs::create_directory(path("adir"));
  e = error_for("[server]\nlisten = [\":21000\"]\n[app]\nwsgi_file = \"adir\"\n");
  EXPECT_NE(e.find("not a regular file"), std::string::npos) << e;
}

TEST_F(ConfigTest, NoListener) {
  std::string e = error_for("[server]\nlisten = []\n[app]\nwsgi_file = \"app.py\"\n");
  EXPECT_EQ(e.rfind(toml_path() + ": no listener", 0), 0u) << e;
  // A uwsgi listener alone is enough.
  load_file_ok(
      "[server]\nlisten = []\nuwsgi_listen = [\":21000\"]\n[app]\nwsgi_file = \"app.py\"\n");
}

TEST_F(ConfigTest, SameAddressTwice) {
  std::string e = error_for(std::string(kMinimal) + "[stats]\nlisten = \"127.0.0.1:21000\"\n");
  EXPECT_NE(e.find("127.0.0.1:21000 is used by both [server] listen and [stats] listen"),
            std::string::npos)
      << e;
}

TEST_F(ConfigTest, ModuleSplitsIntoModuleAndCallable) {
  Config cfg =
      load_file_ok("[server]\nlisten = [\":21000\"]\n[app]\nmodule = \"pkg.wsgi:make_app\"\n");
  EXPECT_EQ(cfg.app.module, "pkg.wsgi");
  EXPECT_EQ(cfg.app.callable, "make_app");
  EXPECT_EQ(cfg.app.wsgi_file, "");
  cfg = load_file_ok(
      "[server]\nlisten = [\":21000\"]\n[app]\nmodule = \"site.wsgi\"\ncallable = \"app\"\n");
  EXPECT_EQ(cfg.app.module, "site.wsgi");
  EXPECT_EQ(cfg.app.callable, "app");
  EXPECT_NE(error_for("[server]\nlisten = [\":21000\"]\n[app]\nmodule = \"pkg..x\"\n")
                .find("[app] module = \"pkg..x\": must be"),
            std::string::npos);
}

TEST_F(ConfigTest, MissingConfigFile) {
  CommandLine c;
  c.config_file = path("absent.toml");
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_FALSE(load_config(c, &cfg, &errors));
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0], path("absent.toml") + ": cannot open: No such file or directory");
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheFilesFolder) {
  write("site/app.py", "application = None\n");
  write("site/lib/.keep", "");
  write("site/work/.keep", "");
  CommandLine c;
  c.config_file = write("site/server.toml", R"([server]
listen = ["unix:run/http.sock"]
uwsgi_listen = ["unix:/abs/uwsgi.sock"]
pidfile = "run/master.pid"
[app]
wsgi_file = "./app.py"
chdir = "work/../work"
python_path = ["lib", "../shared"]
[stats]
listen = "unix:run/stats.sock"
[log]
file = "logs/server.log"
)");
  Config cfg = load_ok(c);
  EXPECT_EQ(cfg.config_file, path("site/server.toml"));
  EXPECT_EQ(cfg.server.listen, std::vector<std::string>{"unix:" + path("site/run/http.sock")});
  EXPECT_EQ(cfg.server.uwsgi_listen, std::vector<std::string>{"unix:/abs/uwsgi.sock"});
  EXPECT_EQ(cfg.server.pidfile, path("site/run/master.pid"));
  EXPECT_EQ(cfg.app.wsgi_file, path("site/app.py"));
  EXPECT_EQ(cfg.app.chdir, path("site/work"));
  EXPECT_EQ(cfg.app.python_path, (std::vector<std::string>{path("site/lib"), path("shared")}));
  EXPECT_EQ(cfg.stats.listen, "unix:" + path("site/run/stats.sock"));
  EXPECT_EQ(cfg.log.file, path("site/logs/server.log"));
}

// Runs the body with the current directory set to |dir|, restoring it afterwards.
class ScopedChdir {
 public:
  explicit ScopedChdir(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedChdir() { fs::current_path(old_); }
  ScopedChdir(const ScopedChdir&) = delete;
  ScopedChdir& operator=(const ScopedChdir&) = delete;
  ScopedChdir(ScopedChdir&&) = delete;
  ScopedChdir& operator=(ScopedChdir&&) = delete;

 private:
  fs::path old_;
};

TEST_F(ConfigTest, CommandLinePathsResolveAgainstTheCurrentDirectory) {
  write("site/server.toml", "[server]\nlisten = [\":21000\"]\n");
  write("cwdapp.py", "application = None\n");
  ScopedChdir cd(dir_);
  CommandLine c = cli({"-c", "site/server.toml", "--wsgi-file", "cwdapp.py", "--pidfile", "x.pid",
                       "--http", "unix:h.sock"});
  Config cfg = load_ok(c);
  EXPECT_EQ(cfg.config_file, path("site/server.toml"));
  EXPECT_EQ(cfg.app.wsgi_file, path("cwdapp.py"));
  EXPECT_EQ(cfg.server.pidfile, path("x.pid"));
  EXPECT_EQ(cfg.server.listen, std::vector<std::string>{"unix:" + path("h.sock")});
}

TEST_F(ConfigTest, CommandLineBeatsTheFile) {
  write("other.py", "application = None\n");
  std::string file = write("server.toml", R"([server]
listen = ["127.0.0.1:21000"]
workers = 2
cores = 50
pidfile = "/run/file.pid"
[app]
module = "from_file:app"
loop = "asyncio"
[stats]
listen = "127.0.0.1:21010"
)");
  Config cfg = load_ok(
      cli({"-c", file, "--http", "127.0.0.1:21100", "--http=127.0.0.1:21101", "--uwsgi-socket",
           "127.0.0.1:21102", "--workers", "5", "--cores=7", "--wsgi-file", path("other.py"),
           "--stats", "127.0.0.1:21103", "--pidfile", "/run/cli.pid", "--loop", "uvloop"}));
  EXPECT_EQ(cfg.server.listen, (std::vector<std::string>{"127.0.0.1:21100", "127.0.0.1:21101"}));
  EXPECT_EQ(cfg.server.uwsgi_listen, std::vector<std::string>{"127.0.0.1:21102"});
  EXPECT_EQ(cfg.server.workers, 5);
  EXPECT_EQ(cfg.server.cores, 7);
  // The command line's app replaces the file's module instead of conflicting with it.
  EXPECT_EQ(cfg.app.wsgi_file, path("other.py"));
  EXPECT_EQ(cfg.app.module, "");
  EXPECT_EQ(cfg.stats.listen, "127.0.0.1:21103");
  EXPECT_EQ(cfg.server.pidfile, "/run/cli.pid");
  EXPECT_EQ(cfg.app.loop, "uvloop");

  cfg = load_ok(cli({"-c", file, "--module", "cli.mod:make"}));
  EXPECT_EQ(cfg.app.module, "cli.mod");
  EXPECT_EQ(cfg.app.callable, "make");
  EXPECT_EQ(cfg.server.workers, 2);  // untouched keys keep the file's values
}

TEST_F(ConfigTest, CommandLineOnly) {
  ScopedChdir cd(dir_);
  Config cfg = load_ok(cli({"--http", "127.0.0.1:21000", "--wsgi-file", "app.py"}));
  EXPECT_EQ(cfg.config_file, "");
  EXPECT_EQ(cfg.app.wsgi_file, path("app.py"));
  EXPECT_GE(cfg.server.workers, 1);

  Config bad;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(cli({"--wsgi-file", "app.py"}), &bad, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("command line: no listener", 0), 0u) << errors[0];

  EXPECT_FALSE(load_config(cli({"--http", ":21000", "--wsgi-file", "gone.py"}), &bad, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "command line: --wsgi-file gone.py: no such file: " + path("gone.py"));

  EXPECT_FALSE(load_config(cli({"--http", "nohost", "--wsgi-file", "app.py"}), &bad, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("command line: --http nohost: missing port", 0), 0u) << errors[0];
}

TEST_F(ConfigTest, ProgrammaticCommandLineIsValidatedToo) {
  CommandLine c;
  ASSERT_TRUE(c.set("--http", ":21000").ok());
  ASSERT_TRUE(c.set("--wsgi-file", path("app.py")).ok());
  ASSERT_TRUE(c.set("--workers", "0").ok());
  ASSERT_TRUE(c.set("--cores", "200000").ok());
  ASSERT_TRUE(c.set("--loop", "gevent").ok());
  EXPECT_FALSE(c.set("--frobnicate", "1").ok());
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_FALSE(load_config(c, &cfg, &errors));
  EXPECT_EQ(errors, (std::vector<std::string>{
                        "command line: --workers 0: must be 1..1024",
                        "command line: --cores 200000: must be 1..100000",
                        "command line: --loop gevent: must be one of \"asyncio\", \"uvloop\""}));
}

TEST_F(ConfigTest, UwsgiSpellingsParse) {
  CommandLine c = cli({"--asyncio", "10", "--http-socket", ":9090", "--greenlet", "--wsgi-file",
                       "app.py", "--processes", "3", "--master"});
  EXPECT_EQ(c.action, CommandLine::Action::kRun);
  EXPECT_EQ(c.values("server", "cores"), std::vector<std::string>{"10"});
  EXPECT_EQ(c.values("server", "listen"), std::vector<std::string>{":9090"});
  EXPECT_EQ(c.values("app", "wsgi_file"), std::vector<std::string>{"app.py"});
  EXPECT_EQ(c.values("server", "workers"), std::vector<std::string>{"3"});
  EXPECT_EQ(c.config_file, "");
  ScopedChdir cd(dir_);
  Config cfg = load_ok(c);
  EXPECT_EQ(cfg.server.cores, 10);
  EXPECT_EQ(cfg.server.listen, std::vector<std::string>{":9090"});
  EXPECT_EQ(cfg.app.wsgi_file, path("app.py"));

  c = cli({"--wsgi", "pkg.mod:app", "--socket", ":21001", "-p", "2", "-p4"});
  EXPECT_EQ(c.values("app", "module"), std::vector<std::string>{"pkg.mod:app"});
  EXPECT_EQ(c.values("server", "uwsgi_listen"), std::vector<std::string>{":21001"});
  EXPECT_EQ(c.values("server", "workers"), (std::vector<std::string>{"2", "4"}));  // the last wins
  Config cfg2 = load_ok(cli({"--http", ":21000", "--wsgi-file", "app.py", "-p", "2", "-p4"}));
  EXPECT_EQ(cfg2.server.workers, 4);
}

TEST_F(ConfigTest, CommandLineForms) {
  CommandLine c = cli({"--config=/etc/a.toml", "--check"});
  EXPECT_EQ(c.config_file, "/etc/a.toml");
  EXPECT_EQ(c.action, CommandLine::Action::kCheck);
  c = cli({"-c", "x.toml"});
  EXPECT_EQ(c.config_file, "x.toml");
  EXPECT_EQ(c.action, CommandLine::Action::kRun);
  c = cli({"-cy.toml", "--version"});
  EXPECT_EQ(c.config_file, "y.toml");
  EXPECT_EQ(c.action, CommandLine::Action::kVersion);
  EXPECT_EQ(cli({"--version", "-h"}).action, CommandLine::Action::kHelp);
  EXPECT_EQ(cli({"--help"}).action, CommandLine::Action::kHelp);
  c = cli({"--http", ":1", "--http", ":2", "--uwsgi-socket", ":3", "--uwsgi-socket=:4", "--stats",
           "unix:/tmp/s", "--loop=uvloop", "--module", "a.b"});
  EXPECT_EQ(c.values("server", "listen"), (std::vector<std::string>{":1", ":2"}));
  EXPECT_EQ(c.values("server", "uwsgi_listen"), (std::vector<std::string>{":3", ":4"}));
  EXPECT_EQ(c.values("stats", "listen"), std::vector<std::string>{"unix:/tmp/s"});
  EXPECT_EQ(c.values("app", "loop"), std::vector<std::string>{"uvloop"});
  EXPECT_EQ(c.values("app", "module"), std::vector<std::string>{"a.b"});
  EXPECT_TRUE(c.values("server", "workers").empty());
  EXPECT_TRUE(c.values("server", "pidfile").empty());
}

std::string usage_error(std::initializer_list<std::string> args) {
  Argv argv(args);
  Result<CommandLine> out = parse_command_line(argv.argc(), argv.argv());
  EXPECT_FALSE(out.ok());
  std::string error = out.ok() ? "" : out.status().message();
  EXPECT_EQ(error.find('\n'), std::string::npos);  // one line
  return error;
}

TEST_F(ConfigTest, ReloadKeysAndFlags) {
  Config cfg = load_file_ok(kMinimal);
  EXPECT_FALSE(cfg.app.reload);
  EXPECT_TRUE(cfg.app.reload_extra.empty());
  cfg = load_file_ok(std::string(kMinimal) +
                     "reload = true\nreload_extra = [\"templates/*.html\", \"/etc/x.ini\"]\n");
  EXPECT_TRUE(cfg.app.reload);
  EXPECT_EQ(cfg.app.reload_extra,
            (std::vector<std::string>{path("templates/*.html"), "/etc/x.ini"}));
  EXPECT_NE(error_for(std::string(kMinimal) + "reload = 1\n").find("[app] reload"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "reload_extra = \"x\"\n").find("array of strings"),
            std::string::npos);
  EXPECT_NE(error_for(std::string(kMinimal) + "reload_extra = [\"\"]\n").find("empty path"),
            std::string::npos);

  // --reload, and uWSGI's --py-autoreload N (any N > 0 turns it on), override the file.
  using V = std::vector<std::string>;
  EXPECT_EQ(cli({}).values("app", "reload"), V{});
  EXPECT_EQ(cli({"--reload"}).values("app", "reload"), V{"true"});
  EXPECT_EQ(cli({"--py-autoreload", "2"}).values("app", "reload"), V{"true"});
  EXPECT_EQ(cli({"--py-autoreload=0"}).values("app", "reload"), V{"false"});
  EXPECT_NE(usage_error({"--py-autoreload", "-1"}).find("--py-autoreload"), std::string::npos);
  EXPECT_NE(usage_error({"--py-autoreload", "x"}).find("--py-autoreload"), std::string::npos);
  EXPECT_NE(usage_error({"--reload=1"}).find("takes no value"), std::string::npos);
  CommandLine c = cli({"-c", write("server.toml", std::string(kMinimal) + "reload = true\n"),
                       "--py-autoreload", "0"});
  EXPECT_FALSE(load_ok(c).app.reload);
  c = cli({"-c", write("server.toml", kMinimal), "--reload"});
  EXPECT_TRUE(load_ok(c).app.reload);
}

TEST_F(ConfigTest, StaticMapResolvesAndSortsLongestPrefixFirst) {
  write("site/static/.keep", "");
  write("site/img/.keep", "");
  Config cfg = load_file_ok(std::string(kMinimal) +
                            "[static]\nmap = {\"/s/\" = \"site/static\", \"/s/img/\" = "
                            "\"site/img\"}\nexpires = 600\n");
  ASSERT_EQ(cfg.statics.map.size(), 2u);
  EXPECT_EQ(cfg.statics.map[0].first, "/s/img/");
  EXPECT_EQ(cfg.statics.map[0].second, path("site/img"));
  EXPECT_EQ(cfg.statics.map[1].first, "/s/");
  EXPECT_EQ(cfg.statics.map[1].second, path("site/static"));
  EXPECT_EQ(cfg.statics.expires, 600);
}

TEST_F(ConfigTest, StaticMapErrorsHaveLocations) {
  write("afile", "");
  std::string base = std::string(kMinimal) + "[static]\n";
  EXPECT_EQ(error_for(base + "map = {\"s/\" = \".\"}\n"),
            toml_path() +
                ":6:8: [static] map.\"s/\" = \".\": the URL prefix must start and end with '/' "
                "(\"/static/\")");
  EXPECT_NE(error_for(base + "map = {\"/s/\" = \"nowhere\"}\n").find("no such directory"),
            std::string::npos);
  EXPECT_NE(error_for(base + "map = {\"/s/\" = \"afile\"}\n").find("not a directory"),
            std::string::npos);
  EXPECT_NE(error_for(base + "map = {\"/s/\" = 1}\n").find("expected string"), std::string::npos);
  EXPECT_NE(error_for(base + "map = \"/s/\"\n").find("expected table"), std::string::npos);
  EXPECT_EQ(error_for(base + "expires = -1\n"),
            toml_path() + ":6:11: [static] expires = -1: must be 0..315360000");
  EXPECT_NE(error_for(base + "other = 1\n").find("[static] other: unknown key"), std::string::npos);
}

TEST_F(ConfigTest, StaticFlagsAddToTheFile) {
  write("a/.keep", "");
  write("b/.keep", "");
  CommandLine c = cli(
      {"-c", write("server.toml", std::string(kMinimal) + "[static]\nmap = {\"/a/\" = \"a\"}\n"),
       "--static-map", "/b/=" + path("b"), "--static-map", "/a/=" + path("b"), "--static-expires",
       "7"});
  Config cfg = load_ok(c);
  ASSERT_EQ(cfg.statics.map.size(), 2u);
  EXPECT_EQ(cfg.statics.map[0].second, path("b"));  // "/a/" replaced by the flag
  EXPECT_EQ(cfg.statics.map[1].first, "/b/");
  EXPECT_EQ(cfg.statics.expires, 7);
  CommandLine bad = cli({"-c", toml_path(), "--static-map", "/c/"});
  Config out;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(bad, &out, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("--static-map /c/: expected PREFIX=DIR"), std::string::npos);
}

TEST(CommandLine, UsageErrors) {
  EXPECT_EQ(usage_error({"--frobnicate"}), "unknown option '--frobnicate' (see --help)");
  EXPECT_EQ(usage_error({"--frobnicate=3"}), "unknown option '--frobnicate' (see --help)");
  EXPECT_EQ(usage_error({"-x"}), "unknown option '-x' (see --help)");
  EXPECT_EQ(usage_error({"server.toml"}), "unexpected argument 'server.toml' (see --help)");
  EXPECT_EQ(usage_error({"--workers"}), "option --workers needs a value (see --help)");
  EXPECT_EQ(usage_error({"-c"}), "option -c needs a value (see --help)");
  EXPECT_EQ(usage_error({"--http="}), "option --http needs a non-empty value");
  EXPECT_EQ(usage_error({"--workers", "two"}),
            "invalid value for --workers: 'two' is not an integer");
  EXPECT_EQ(usage_error({"--asyncio", "10x"}),
            "invalid value for --asyncio: '10x' is not an integer");
  EXPECT_EQ(usage_error({"--processes", "0"}),
            "invalid value for --processes: 0 (must be 1..1024)");
  EXPECT_EQ(usage_error({"--cores=99999999999"}),
            "invalid value for --cores: 99999999999 (must be 1..100000)");
  EXPECT_EQ(usage_error({"--loop", "trio"}),
            "invalid value for --loop: 'trio' (must be one of \"asyncio\", \"uvloop\")");
  EXPECT_EQ(usage_error({"--greenlet=1"}), "option --greenlet takes no value");
  EXPECT_EQ(usage_error({"-c", "a.toml", "--config", "b.toml"}),
            "option --config given twice: only one config file is read");
  EXPECT_NE(usage_error({"--module", "a b"}).find("invalid value for --module"), std::string::npos);
  EXPECT_EQ(usage_error({"--wsgi-file", "a.py", "--module", "m"}),
            "--wsgi-file and --module both given: the app comes from one of them");
}

TEST(CommandLine, UsageListsEveryFlag) {
  std::string usage = usage_text();
  for (const char* flag :
       {"-c, --config",  "--check",         "--version",   "-h, --help",    "--http ",
        "--http-socket", "--uwsgi-socket",  "--socket",    "-p, --workers", "--processes",
        "--cores",       "--asyncio",       "--wsgi-file", "--module",      "--wsgi ",
        "--stats",       "--pidfile",       "--loop",      "--greenlet",    "--master",
        "--static-map",  "--static-expires"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

// A key's value in |cfg|, as text, to compare loads.
std::string field_text(const Key& key, const Config& cfg) {
  Config copy = cfg;
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_arithmetic_v<T>) {
          return std::to_string(*p);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return *p;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string s;
          for (const auto& v : *p) s += v + ";";
          return s;
        } else {
          std::string s;
          for (const auto& [k, v] : *p) s += k + "=" + v + ";";
          return s;
        }
      },
      key.field(copy));
}

// A valid value for |key| that differs from its default: as TOML, as a flag's text, and as
// field_text shows it once loaded from dir_ (the file's folder and the current directory).
struct Sample {
  std::string toml, flag, loaded;
};

class KeyTableTest : public ConfigTest {
 protected:
  Sample sample(const Key& key) {
    const Config defaults;
    switch (key.type) {
      case Type::kInt: {
        int64_t v = key.min + 1;
        return {std::to_string(v), std::to_string(v), std::to_string(v)};
      }
      case Type::kFileMode:
        return {"\"660\"", "660", std::to_string(0660)};
      case Type::kSeconds:
      case Type::kPositiveSeconds:
        return {"2.5", "2.5", std::to_string(2.5)};
      case Type::kBool: {
        bool v = field_text(key, defaults) != "1";
        return {v ? "true" : "false", v ? "true" : "false", v ? "1" : "0"};
      }
      case Type::kChoice: {
        std::string v(key.choices.back());
        return {"\"" + v + "\"", v, v};
      }
      case Type::kPythonName:
        return {"\"make_app\"", "make_app", "make_app"};
      case Type::kModule:
        return {"\"pkg.wsgi\"", "pkg.wsgi", "pkg.wsgi"};
      case Type::kPath:
        if (key.role == Role::kAppFile) return {"\"app.py\"", "app.py", path("app.py")};
        return {"\"run/x.out\"", "run/x.out", path("run/x.out")};
      case Type::kDirectory:
        write("work/.keep", "");
        return {"\"work\"", "work", path("work")};
      case Type::kVirtualenv:
        write("venv/pyvenv.cfg",
              "home = /usr/bin\nversion = " + std::string(embedded_python_version()) + "\n");
        write("venv/bin/python", "");
        return {"\"venv\"", "venv", path("venv")};
      case Type::kUser:
      case Type::kGroup:
        return {"\"0\"", "0", "0"};
      case Type::kAddress:
      case Type::kTcpAddress:
        return {"\"127.0.0.1:21050\"", "127.0.0.1:21050", "127.0.0.1:21050"};
      case Type::kAddressList:
        return {"[\"127.0.0.1:21051\"]", "127.0.0.1:21051", "127.0.0.1:21051;"};
      case Type::kPathList:
        return {"[\"lib\"]", "lib", path("lib") + ";"};
      case Type::kNetworkList:
        return {"[\"10.0.0.0/8\"]", "10.0.0.0/8", "10.0.0.0/8;"};
      case Type::kUrlPrefix:
        return {"\"/app/\"", "/app/", "/app"};
      case Type::kHeaderList:
        return {"[\"X-A: 1\"]", "X-A: 1", "X-A: 1;"};
      case Type::kEnv:
        return {"{ MODE = \"prod\" }", "MODE=prod", "MODE=prod;"};
      case Type::kStaticMap:
        write("static/.keep", "");
        return {"{ \"/s/\" = \"static\" }", "/s/=static", "/s/=" + path("static") + ";"};
    }
    return {};
  }

  // A file with a listener and an app around |line| in [|key.table|].
  std::string file_with(const Key& key, const std::string& line) {
    std::string server = key.name == "listen" && key.table == "server"
                             ? "[server]\n"
                             : "[server]\nlisten = [\":21000\"]\n";
    const bool app_key = key.role == Role::kAppFile || key.role == Role::kAppModule;
    std::string app_line = !app_key ? "wsgi_file = \"app.py\"\n" : "";
    std::string app = "[app]\n" + app_line;
    if (key.table == "server") return server + line + "\n" + app;
    if (key.table == "app") return server + app + line + "\n";
    return server + app + "[" + std::string(key.table) + "]\n" + line + "\n";
  }
};

TEST_F(KeyTableTest, EveryKeyRoundTripsThroughTheFileAndItsFlag) {
  ScopedChdir cd(dir_);
  const Config defaults;
  for (const Key& key : keys()) {
    SCOPED_TRACE(std::string("[").append(key.table) + std::string("] ").append(key.name));
    Sample s = sample(key);
    ASSERT_NE(s.loaded, field_text(key, defaults)) << "the sample must differ from the default";
    std::string line = std::string(key.name) + " = " + s.toml;
    if (key.role == Role::kAppFile) line = "module = \"\"\n" + line;
    Config from_file = load_file_ok(file_with(key, line));
    EXPECT_EQ(field_text(key, from_file), s.loaded);
    if (key.flag.name.empty()) continue;
    for (std::string_view flag : {key.flag.name, key.flag.uwsgi, key.flag.uwsgi_also}) {
      if (flag.empty()) continue;
      SCOPED_TRACE(std::string(flag));
      write("server.toml", file_with(key, ""));
      Config from_flag = load_ok(cli({"-c", "server.toml", std::string(flag), s.flag}));
      EXPECT_EQ(field_text(key, from_flag), s.loaded);
    }
    if (key.flag.short_name != 0) {
      Config from_short =
          load_ok(cli({"-c", "server.toml", std::string("-") + key.flag.short_name + s.flag}));
      EXPECT_EQ(field_text(key, from_short), s.loaded);
    }
  }
}

TEST(KeyTable, PrintKeysListsEveryKeyOnceByTable) {
  std::string want;
  std::set<std::string> seen;
  size_t table = 0;
  for (const Key& key : keys()) {
    std::string line = std::string("[").append(key.table) + std::string("] ").append(key.name);
    EXPECT_TRUE(seen.insert(line).second) << "twice: " << line;
    EXPECT_EQ(find_key(key.table, key.name), &key);
    // Keys are grouped by table, in the order of tables().
    while (table < tables().size() && tables()[table] != key.table) ++table;
    EXPECT_LT(table, tables().size()) << line << " is out of table order";
    EXPECT_FALSE(key.doc.empty()) << line;
    want += line + "\n";
  }
  EXPECT_EQ(key_list(), want);
  EXPECT_EQ(find_key("server", "nope"), nullptr);
  EXPECT_EQ(find_flag("--processes"), find_key("server", "workers"));
  EXPECT_EQ(find_flag("-p"), find_key("server", "workers"));
  EXPECT_EQ(find_flag("--asyncio"), find_key("server", "cores"));
  EXPECT_EQ(find_flag("--nope"), nullptr);
  Argv argv({"--print-keys", "--check"});
  Result<CommandLine> c = parse_command_line(argv.argc(), argv.argv());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->action, CommandLine::Action::kPrintKeys);
}

TEST(KeyTable, HelpListsEveryFlagAndKey) {
  std::string usage = usage_text();
  for (const Option& o : options()) {
    std::string spelled = o.short_name != 0 ? std::string("-") + o.short_name + ", " : "";
    EXPECT_NE(usage.find(spelled + std::string(o.name)), std::string::npos) << o.name;
  }
  for (std::string_view table : tables()) {
    EXPECT_NE(usage.find("\n[" + std::string(table) + "]\n"), std::string::npos) << table;
  }
  for (const Key& key : keys()) {
    EXPECT_NE(usage.find("  " + std::string(key.name) + " = "), std::string::npos) << key.name;
    for (std::string_view flag : {key.flag.name, key.flag.uwsgi, key.flag.uwsgi_also}) {
      if (!flag.empty()) {
        EXPECT_NE(usage.find(std::string(flag) + " "), std::string::npos) << flag;
      }
    }
    if (key.flag.short_name != 0) {
      std::string spelled =
          std::string("-") + key.flag.short_name + ", " + std::string(key.flag.name);
      EXPECT_NE(usage.find(spelled), std::string::npos) << spelled;
    }
  }
  EXPECT_NE(usage.find("--print-keys"), std::string::npos);
}

TEST_F(ConfigTest, UwsgiOptionsFollowTheTable) {
  write("lib/.keep", "");
  Config cfg = load_file_ok(R"([server]
listen = ["127.0.0.1:21000", "127.0.0.1:21001"]
workers = 3
user = "0"
[app]
wsgi_file = "app.py"
python_path = ["lib"]
env = { A = "1" }
[limits]
harakiri = 2.5
)");
  std::vector<std::string> seen;
  std::map<std::string, UwsgiOption> opts;
  for_each_uwsgi_option(cfg, [&](const UwsgiOption& o) {
    seen.emplace_back(o.name);
    opts[std::string(o.name)] = o;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"http-socket", "processes", "asyncio", "listen", "uid",
                                            "master", "greenlet", "wsgi-file", "callable",
                                            "pythonpath", "env", "loop", "harakiri"}));
  EXPECT_EQ(opts["http-socket"].texts,
            (std::vector<std::string>{"127.0.0.1:21000", "127.0.0.1:21001"}));
  EXPECT_EQ(opts["processes"].kind, UwsgiOption::Kind::kNumber);
  EXPECT_EQ(opts["processes"].number, 3);
  EXPECT_EQ(opts["master"].kind, UwsgiOption::Kind::kTrue);
  EXPECT_EQ(opts["env"].texts, std::vector<std::string>{"A=1"});
  EXPECT_EQ(opts["harakiri"].number, 2.5);
  EXPECT_EQ(opts["wsgi-file"].texts, std::vector<std::string>{path("app.py")});
}

}  // namespace
}  // namespace aiowsgi::config
