// The steps of load_config (config/config.cpp), shared by the files that implement them:
// the file pass (config/file_loader.cpp), the command-line pass (config/command_line.cpp)
// and the cross-field checks (config/checks.cpp). Master only; no Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace aiowsgi::config {

// Every problem found while loading, reported together. Errors with a file location sort by
// line and column (toml::table iterates keys in sorted order, not file order); errors without
// one follow in the order they were found.
class ErrorList {
 public:
  // Each message is kept on one line (config/values.h one_line).
  void at(const std::string& file, uint32_t line, uint32_t column, const std::string& msg);
  void add(std::string msg);
  bool empty() const { return located_.empty() && plain_.empty(); }
  size_t size() const { return located_.size() + plain_.size(); }
  std::vector<std::string> take();

 private:
  std::vector<std::tuple<uint32_t, uint32_t, std::string>> located_;
  std::vector<std::string> plain_;
};

// Where a setting came from, for checks made after the file and the command line are merged
// ("server.toml:7:13: [app] wsgi_file = \"app.py\"" or "command line: --wsgi-file app.py").
// The flags keep one mistake from producing a second, misleading error: a listen array with a
// bad address must not also yield "no listener".
struct Origins {
  std::string wsgi_file;
  bool file_failed = false;    // unreadable or not TOML: nothing else about it is known
  bool listen_error = false;   // some listener was rejected
  bool app_error = false;      // wsgi_file or module was rejected
  std::set<const Key*> given;  // keys the file or a flag set, even to their default
};

// A whole (small) file: the config file, a venv's pyvenv.cfg. The error says "cannot open" or
// "cannot read" with errno's reason.
Result<std::string> read_file(const std::string& path);

// The file pass: parses |text| (the file |label| as the user named it, at |source_path|) and
// sets every key it holds, checked by the key table's rules; relative paths resolve against
// |dir|.
void load_file(const std::string& label, const std::string& text, const std::string& source_path,
               const std::filesystem::path& dir, Config* cfg, ErrorList* errors, Origins* origins);

// The command-line pass, after the file: every setting of |cli|, checked by the same rules;
// relative paths resolve against |cwd|.
void apply_command_line(const CommandLine& cli, const std::filesystem::path& cwd, Config* cfg,
                        ErrorList* errors, Origins* origins);

// apply_command_line's work for any list of settings: the command line's, or those an --ini
// file translates to (each with its origin for messages); relative paths resolve against
// |base|.
void apply_settings(const std::vector<CommandLine::Setting>& settings,
                    const std::filesystem::path& base, Config* cfg, ErrorList* errors,
                    Origins* origins);

// The cross-field checks, once the file and the command line are merged. |origin| names the
// configuration in messages: the file as given, or "command line".
void check_listeners(const std::string& origin, const Origins& origins, const Config& cfg,
                     ErrorList* errors);
void check_app(const std::string& origin, const Origins& origins, Config* cfg, ErrorList* errors);
void check_distinct_addresses(const std::string& origin, const Config& cfg, ErrorList* errors);
// https:// only on [server] listen, with [tls] certificate and key that load (the same
// TLS context a worker builds); logs the certificate's subject and expiry.
void check_tls(const std::string& origin, const Config& cfg, ErrorList* errors);
void order_static_map(Config* cfg);
// [app] virtualenv unset and $VIRTUAL_ENV set (an activated venv): that venv, checked like the
// key's value (relative to |cwd|); marks it as coming from the environment.
void use_virtual_env_variable(const std::filesystem::path& cwd, Config* cfg, ErrorList* errors);
// [server] forwarded_allow_ips unset and $FORWARDED_ALLOW_IPS set (gunicorn's variable): its
// comma-separated list, checked like the key's value; a note says so at start.
void use_forwarded_allow_ips_variable(const Origins& origins, Config* cfg, ErrorList* errors);

}  // namespace aiowsgi::config
