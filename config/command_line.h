// The command line's own options (-c, --check, --help, ...), beside the flags of the key table
// (config/keys.h), for the parser and --help. Master only; no Python.
#pragma once

#include <span>
#include <string_view>

namespace aiowsgi::config {

struct Option {
  enum class Kind {
    kConfig,
    kIni,
    kCheck,
    kPrintToml,
    kPrintKeys,
    kVersion,
    kHelp,
    kReload,
    kPyAutoreload
  };
  std::string_view name;  // "--config"
  char short_name;        // 'c', or 0
  Kind kind;
  std::string_view metavar;  // "FILE", or "" when the option takes no value
  std::string_view doc;      // one line, for --help
};

// The options that set no key, in --help order.
std::span<const Option> options();

}  // namespace aiowsgi::config
