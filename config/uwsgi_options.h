// What each uWSGI option means here: mapped onto a key of the key table (config/keys.h,
// which holds each key's uWSGI spellings), accepted with a note saying why it has no effect,
// or refused with the reason and what to use instead. Turns the options of a uwsgi.ini
// (config/uwsgi_ini.h) into settings checked like flags. Master only; no Python.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/uwsgi_ini.h"

namespace aiowsgi::config {

struct UwsgiTranslation {
  std::vector<CommandLine::Setting> settings;  // each with its origin "uwsgi.ini:LINE"
  std::vector<std::string> notes;              // "uwsgi.ini:3: master: accepted, ..."
  std::vector<std::string> errors;             // "uwsgi.ini:9: daemonize: ... (use ...)"
};

// Translates |options| in order. Every refused or unknown option is an error (an unknown one
// names the closest known option); the others become settings or notes.
UwsgiTranslation translate_uwsgi_options(const std::vector<IniOption>& options);

// The table of options that are noted or refused, for the man page check and --help:
// name ("route*" matches every option starting with "route"), and the reason.
struct UwsgiVerdict {
  std::string_view name;
  bool refused;
  std::string_view reason;   // why it is noted or refused
  std::string_view instead;  // refused only: what to use instead
};
std::vector<UwsgiVerdict> uwsgi_verdicts();

// How a uWSGI option is written on a command line (--OPTION [VALUE]): kUnknown for a name the
// table does not know; kSwitch for one that takes no value (--master, --vacuum; a following
// true/false/1/0 is still its value); kOptionalValue for one whose value may be left out
// (--chmod-socket); kValue for the others.
enum class UwsgiArity { kUnknown, kSwitch, kOptionalValue, kValue };
UwsgiArity uwsgi_option_arity(std::string_view name);

// Every uWSGI option name that maps onto a key (the key table's spellings and the ones this
// file translates), sorted.
std::vector<std::string> mapped_uwsgi_options();

}  // namespace aiowsgi::config
