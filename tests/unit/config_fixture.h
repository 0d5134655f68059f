// Test support for the config unit tests (config/*_test.cpp): ConfigTest, a fixture with its
// own temporary folder holding server.toml and the app it names, with helpers to load a file
// or a command line; Argv, a mutable argv; ScopedChdir; kMinimal, the smallest valid file.
#pragma once

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

namespace aiowsgi::config {

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

inline constexpr const char* kMinimal = R"([server]
listen = ["127.0.0.1:21000"]
[app]
wsgi_file = "app.py"
)";

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

}  // namespace aiowsgi::config
