#include "config/virtualenv.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/scratch_dir.h"

namespace aiowsgi::config {
namespace {

namespace fs = std::filesystem;

TEST(PyvenvCfg, ReadsWhatPythonsVenvWrites) {
  Result<PyvenvCfg> c = parse_pyvenv_cfg(
      "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
      "executable = /usr/bin/python3.11\ncommand = /usr/bin/python3.11 -m venv /srv/v\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->home, "/usr/bin");
  EXPECT_EQ(c->version, "3.11.2");
  EXPECT_FALSE(c->include_system_site_packages);
}

TEST(PyvenvCfg, ReadsWhatTheVirtualenvToolWrites) {
  Result<PyvenvCfg> c = parse_pyvenv_cfg(
      "home = /usr/bin\r\nimplementation = CPython\r\nversion_info = 3.11.2.final.0\r\n"
      "virtualenv = 20.17.1\r\ninclude-system-site-packages = True\r\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->version, "3.11.2.final.0");
  EXPECT_TRUE(c->include_system_site_packages);
}

TEST(PyvenvCfg, BrokenFilesSayWhy) {
  struct Case {
    const char* text;
    const char* reason;
  } cases[] = {
      {"home = /usr/bin\nthis is not a setting\nversion = 3.11.2\n", "line 2 is not"},
      {"version = 3.11.2\n", "no \"home = FOLDER\" line"},
      {"home = /usr/bin\n", "no \"version = X.Y.Z\" line"},
      {"home = /usr/bin\nversion = 3.11.2\ninclude-system-site-packages = maybe\n",
       "line 3: include-system-site-packages = maybe is not true or false"},
      {"", "no \"home"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Result<PyvenvCfg> r = parse_pyvenv_cfg(c.text);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(c.reason), std::string::npos) << r.status().message();
  }
}

class VirtualenvTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("VIRTUAL_ENV"); }
  void TearDown() override { unsetenv("VIRTUAL_ENV"); }
  std::string write(const std::string& name, const std::string& content) {
    return scratch_.write(name, content);
  }
  // A venv as `python3 -m venv` leaves it, made by |version|.
  std::string venv(const std::string& name, const std::string& version) {
    write(name + "/pyvenv.cfg",
          "home = /usr/bin\ninclude-system-site-packages = false\nversion = " + version + "\n");
    write(name + "/bin/python", "");
    return (dir_ / name).string();
  }
  std::string site_packages(const std::string& name) {
    std::string v(embedded_python_version());
    return name + "/lib/python" + v.substr(0, v.rfind('.')) + "/site-packages";
  }
  static void expect_has(const Status& st, const std::vector<std::string>& parts) {
    ASSERT_FALSE(st.ok());
    for (const std::string& p : parts) {
      EXPECT_NE(st.message().find(p), std::string::npos) << "no '" << p << "' in " << st.message();
    }
  }
  testing::ScratchDir scratch_{"aiowsgi-venv"};
  const fs::path dir_ = scratch_.path();
};

TEST_F(VirtualenvTest, AVenvOfTheEmbeddedVersionPasses) {
  EXPECT_TRUE(check_virtualenv(venv("v", std::string(embedded_python_version()))).ok());
  // Another patch release of the same minor version shares the stdlib and the ABI.
  std::string v(embedded_python_version());
  EXPECT_TRUE(check_virtualenv(venv("w", v.substr(0, v.rfind('.')) + ".99")).ok());
}

TEST_F(VirtualenvTest, ErrorsNameThePathAndBothVersions) {
  const std::string embedded(embedded_python_version());
  expect_has(check_virtualenv((dir_ / "missing").string()),
             {"no such directory", (dir_ / "missing").string(), embedded});
  write("plain/app.py", "");
  expect_has(check_virtualenv((dir_ / "plain").string()),
             {"not a virtualenv", "no pyvenv.cfg", (dir_ / "plain").string(), embedded});
  expect_has(check_virtualenv(venv("old", "3.9.2")),
             {"made by Python 3.9.2", (dir_ / "old").string(), "embeds Python " + embedded});
  write("broken/pyvenv.cfg", "home = /usr/bin\n");
  expect_has(check_virtualenv((dir_ / "broken").string()),
             {"broken virtualenv", (dir_ / "broken/pyvenv.cfg").string(), "version", embedded});
  write("nobin/pyvenv.cfg", "home = /usr/bin\nversion = " + embedded + "\n");
  expect_has(check_virtualenv((dir_ / "nobin").string()),
             {"broken virtualenv", (dir_ / "nobin/bin/python").string()});
}

TEST_F(VirtualenvTest, AGreenletOfAnotherVersionInTheVenvIsRefused) {
  std::string v = venv("v", std::string(embedded_python_version()));
  const std::string built(built_greenlet_version());
  write(site_packages("v") + "/greenlet-" + built + ".dist-info/METADATA", "");
  EXPECT_TRUE(check_virtualenv(v).ok());
  write(site_packages("v") + "/greenlet-0.4.0-py3.11.egg-info/PKG-INFO", "");
  expect_has(check_virtualenv(v), {"greenlet 0.4.0", "built against greenlet " + built, v});
}

TEST_F(VirtualenvTest, VirtualEnvVariableIsUsedWhenTheKeyIsUnset) {
  write("app.py", "def application(e, s):\n    return []\n");
  const std::string toml = "[server]\nlisten = [\":21000\"]\n[app]\nwsgi_file = \"app.py\"\n";
  const std::string file = (dir_ / "server.toml").string();
  std::string active = venv("active", std::string(embedded_python_version()));
  std::string chosen = venv("chosen", std::string(embedded_python_version()));
  Config cfg;
  std::vector<std::string> errors;

  ASSERT_TRUE(load_config_from_string(toml, file, &cfg, &errors)) << errors[0];
  EXPECT_EQ(cfg.app.virtualenv, "");

  setenv("VIRTUAL_ENV", (active + "/").c_str(), 1);
  ASSERT_TRUE(load_config_from_string(toml, file, &cfg, &errors)) << errors[0];
  EXPECT_EQ(cfg.app.virtualenv, active);
  EXPECT_TRUE(cfg.app.virtualenv_from_environment);

  ASSERT_TRUE(load_config_from_string(toml + "virtualenv = \"chosen/\"\n", file, &cfg, &errors))
      << errors[0];
  EXPECT_EQ(cfg.app.virtualenv, chosen);
  EXPECT_FALSE(cfg.app.virtualenv_from_environment);

  setenv("VIRTUAL_ENV", (dir_ / "nowhere").c_str(), 1);
  ASSERT_FALSE(load_config_from_string(toml, file, &cfg, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("environment: VIRTUAL_ENV=" + (dir_ / "nowhere").string()),
            std::string::npos)
      << errors[0];
}

TEST_F(VirtualenvTest, KeyErrorsHaveTheFilesLocation) {
  write("app.py", "def application(e, s):\n    return []\n");
  write("plain/x", "");
  Config cfg;
  std::vector<std::string> errors;
  ASSERT_FALSE(load_config_from_string(
      "[server]\nlisten = [\":21000\"]\n[app]\nwsgi_file = \"app.py\"\nvirtualenv = \"plain\"\n",
      (dir_ / "server.toml").string(), &cfg, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(
      errors[0].rfind((dir_ / "server.toml").string() + ":5:14: [app] virtualenv = \"plain\": "
                                                        "not a virtualenv",
                      0),
      0u)
      << errors[0];
}

}  // namespace
}  // namespace aiowsgi::config
