// Tests for the key table: every key round-trips through the file and its flag, the key
// and help listings cover every key once, and the uWSGI option mapping follows the table.
#include "config/keys.h"

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
#include "config/values.h"
#include "config/virtualenv.h"
#include "tests/unit/config_fixture.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

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
      case Type::kRegexExpiry:
        return {"['\\.css$  60']", "\\.css$ 60", "\\.css$ 60;"};
      case Type::kTypeExpiry:
        return {"[\"text/css 60\"]", "text/css 60", "text/css 60;"};
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
    // [tls] keys load only together, as a certificate and its key that OpenSSL accepts:
    // tests/e2e/test_tls.py makes real ones and covers them.
    if (key.table == "tls") continue;
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
