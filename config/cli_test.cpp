// Tests for the command line: its flags against the file, uWSGI spellings, reload and static
// flags, paths resolved against the current directory, usage errors and the usage text.
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
#include "config/values.h"
#include "config/virtualenv.h"
#include "tests/unit/config_fixture.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

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

// uWSGI's static-expires family: "PATTERN SECONDS" lists, normalized, checked with the file's
// location, and added to by their flags.
TEST_F(ConfigTest, StaticExpiryRules) {
  std::string base = std::string(kMinimal) + "[static]\n";
  Config cfg = load_file_ok(base +
                            "expires_file = ['^/srv/.*\\.woff2$   31536000']\n"
                            "expires_uri = ['^/static/.*\\.(css|js)$ 86400', ' /a b/ 0 ']\n"
                            "expires_type = ['image/png 600']\n");
  EXPECT_EQ(cfg.statics.expires_file, (std::vector<std::string>{"^/srv/.*\\.woff2$ 31536000"}));
  EXPECT_EQ(cfg.statics.expires_uri,
            (std::vector<std::string>{"^/static/.*\\.(css|js)$ 86400", "/a b/ 0"}));
  EXPECT_EQ(cfg.statics.expires_type, (std::vector<std::string>{"image/png 600"}));

  std::string e = error_for(base + "expires_uri = ['(unclosed 60']\n");
  EXPECT_EQ(e.rfind(toml_path() + ":6:", 0), 0u) << e;
  EXPECT_NE(e.find(": [static] expires_uri = \"(unclosed 60\": invalid regular expression: "),
            std::string::npos)
      << e;
  e = error_for(base + "expires_file = ['/v\\d+/ 60']\n");
  EXPECT_NE(e.find("\\d is PCRE, not POSIX: write [0-9]"), std::string::npos) << e;
  e = error_for(base + "expires_uri = ['\\.css$']\n");
  EXPECT_NE(e.find("[static] expires_uri = \"\\\\.css$\": must be \"PATTERN SECONDS\""),
            std::string::npos)
      << e;
  e = error_for(base + "expires_uri = ['\\.css$ 1d']\n");
  EXPECT_NE(e.find("'1d' is not a number of seconds"), std::string::npos) << e;
  e = error_for(base + "expires_type = ['text/css 315360001']\n");
  EXPECT_NE(e.find("[static] expires_type = \"text/css 315360001\": seconds must be 0..315360000"),
            std::string::npos)
      << e;
  e = error_for(base + "expires_type = ['css 60']\n");
  EXPECT_NE(e.find("'css' is not TYPE/SUBTYPE"), std::string::npos) << e;
  e = error_for(base + "expires_type = 'text/css 60'\n");
  EXPECT_NE(e.find("[static] expires_type: expected array of strings, got string"),
            std::string::npos)
      << e;

  CommandLine c = cli({"-c", write("server.toml", base + "expires_uri = ['^/a/ 1']\n"),
                       "--static-expires-uri", "^/b/ 2", "--static-expires-type", "text/css 3"});
  cfg = load_ok(c);
  EXPECT_EQ(cfg.statics.expires_uri, (std::vector<std::string>{"^/a/ 1", "^/b/ 2"}));
  EXPECT_EQ(cfg.statics.expires_type, (std::vector<std::string>{"text/css 3"}));
  CommandLine bad = cli({"-c", toml_path(), "--static-expires-uri", "[x 2"});
  Config out;
  std::vector<std::string> errors;
  EXPECT_FALSE(load_config(bad, &out, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("--static-expires-uri [x 2: invalid regular expression"),
            std::string::npos)
      << errors[0];
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
  EXPECT_EQ(usage_error({"--check=1"}), "option --check takes no value");
  EXPECT_EQ(usage_error({"-c", "a.toml", "--config", "b.toml"}),
            "option --config given twice: only one config file is read");
  EXPECT_NE(usage_error({"--module", "a b"}).find("invalid value for --module"), std::string::npos);
  EXPECT_EQ(usage_error({"--wsgi-file", "a.py", "--module", "m"}),
            "--wsgi-file and --module both given: the app comes from one of them");
}

TEST(CommandLine, UsageListsEveryFlag) {
  std::string usage = usage_text();
  for (const char* flag : {"-c, --config",   "--check",          "--version",
                           "-h, --help",     "--http ",          "--http-socket",
                           "--uwsgi-socket", "--socket",         "-p, --workers",
                           "--processes",    "--cores",          "--asyncio",
                           "--wsgi-file",    "--module",         "--wsgi ",
                           "--stats",        "--pidfile",        "--loop",
                           "--static-map",   "--static-expires", "Any other option of uWSGI's"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace aiowsgi::config
