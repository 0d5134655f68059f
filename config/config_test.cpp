// Tests for load_config on files: every key and its default, TOML syntax, unknown tables and
// keys, uWSGI ini files, the app and listener checks, and paths relative to the file.
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
#include "tests/unit/config_fixture.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

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
  EXPECT_EQ(e, toml_path() +
                   ":6:2: [limit]: unknown table (known: [server] [app] [limits] [stats] [log] "
                   "[static] [tls])");
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

}  // namespace
}  // namespace aiowsgi::config
