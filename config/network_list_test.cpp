// [server] forwarded_allow_ips written as gunicorn users write it: a comma-separated list, in
// a flag, in server.toml or in $FORWARDED_ALLOW_IPS (used only when the key is unset).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config_fixture.h"

namespace aiowsgi::config {
namespace {

using Strings = std::vector<std::string>;

// ConfigTest's temporary folder, with $FORWARDED_ALLOW_IPS unset around each test.
class NetworkListTest : public ConfigTest {
 protected:
  void SetUp() override {
    ConfigTest::SetUp();
    ::unsetenv("FORWARDED_ALLOW_IPS");
  }
  void TearDown() override {
    ::unsetenv("FORWARDED_ALLOW_IPS");
    ConfigTest::TearDown();
  }

  // Loads |server_lines| (under [server]) plus |flags|; the errors, or none.
  Strings load(const std::string& server_lines, Strings flags = {}) {
    std::string toml = write("server.toml", "[server]\nlisten = [\"127.0.0.1:21000\"]\n" +
                                                server_lines + "\n[app]\nwsgi_file = \"app.py\"\n");
    std::vector<std::string> storage{"aiowsgi-master", "-c", toml};
    storage.insert(storage.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    Result<CommandLine> cli = parse_command_line(static_cast<int>(storage.size()), argv.data());
    if (!cli.ok()) return {cli.status().message()};
    Strings errors;
    cfg_ = Config();
    load_config(*cli, &cfg_, &errors);
    return errors;
  }

  Config cfg_;
};

TEST_F(NetworkListTest, FlagTakesACommaSeparatedListAndRepeats) {
  ASSERT_EQ(load("", {"--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8,", "--forwarded-allow-ips",
                      "fd00::/8"}),
            Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, (Strings{"127.0.0.1", "10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(load("", {"--forwarded-allow-ips=10.0.0.1,nohost"}),
            Strings{"command line: --forwarded-allow-ips 10.0.0.1,nohost: 'nohost' is not an IP "
                    "address, a network (10.0.0.0/8, fd00::/8) or \"*\""});
}

TEST_F(NetworkListTest, TomlTakesAnArrayOrOneCommaSeparatedString) {
  ASSERT_EQ(load("forwarded_allow_ips = \"10.1.2.3,192.168.0.0/16\""), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, (Strings{"10.1.2.3", "192.168.0.0/16"}));
  ASSERT_EQ(load("forwarded_allow_ips = \"*\""), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, Strings{"*"});
  ASSERT_EQ(load("forwarded_allow_ips = [\"10.1.2.3\"]"), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, Strings{"10.1.2.3"});
  Strings errors = load("forwarded_allow_ips = 7");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("[server] forwarded_allow_ips: expected array of strings, got integer"),
            std::string::npos)
      << errors[0];
}

TEST_F(NetworkListTest, EnvironmentVariableOnlyWhenTheKeyIsUnset) {
  ::setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 172.16.0.1", 1);
  ASSERT_EQ(load(""), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, (Strings{"10.0.0.0/8", "172.16.0.1"}));
  ASSERT_EQ(cfg_.notes.size(), 1u);
  EXPECT_NE(cfg_.notes[0].find("FORWARDED_ALLOW_IPS=10.0.0.0/8, 172.16.0.1"), std::string::npos);

  // Set to its default value is still set: the variable is not looked at.
  ASSERT_EQ(load("forwarded_allow_ips = [\"127.0.0.1\", \"::1\"]"), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, (Strings{"127.0.0.1", "::1"}));
  EXPECT_TRUE(cfg_.notes.empty());
  ASSERT_EQ(load("", {"--forwarded-allow-ips", "*"}), Strings{});
  EXPECT_EQ(cfg_.server.forwarded_allow_ips, Strings{"*"});

  ::setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/33", 1);
  Strings errors = load("");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("environment: FORWARDED_ALLOW_IPS=10.0.0.0/33: \"10.0.0.0/33\": ", 0),
            0u)
      << errors[0];
}

}  // namespace
// [server] add_header, another [server] list a flag adds to: normalized "Name: value".
TEST_F(NetworkListTest, AddHeaderIsCheckedAndNormalized) {
  ASSERT_EQ(load("add_header = [\"X-Frame-Options:SAMEORIGIN \"]", {"--add-header", "X-A:  1"}),
            Strings{});
  EXPECT_EQ(cfg_.server.add_header, (Strings{"X-Frame-Options: SAMEORIGIN", "X-A: 1"}));
  for (auto [field, reason] : std::initializer_list<std::pair<const char*, const char*>>{
           {"X A: 1", "the name must be an HTTP token"},
           {": 1", "the name must be an HTTP token"},
           {"Transfer-Encoding: gzip", "the server writes Transfer-Encoding itself"},
           {"upgrade: h2c", "the server writes upgrade itself"},
           {"X-A: 1\\r\\nX-B: 2", "the value must not hold CR, LF or NUL"},
           {"X-A", "must be \"Name: value\""}}) {
    Strings errors = load(std::string("add_header = [\"") + field + "\"]");
    ASSERT_EQ(errors.size(), 1u) << field;
    EXPECT_NE(errors[0].find("[server] add_header = \""), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find(reason), std::string::npos) << errors[0];
  }
}

}  // namespace aiowsgi::config
