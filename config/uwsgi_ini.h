// The uWSGI ini reader: a uwsgi.ini file's section (`[uwsgi]` by default) as the list of
// options it sets, in file order, with uWSGI's syntax resolved (includes, if-blocks,
// `%(key)`, `$(ENV)` and magic variables). What each option means is config/uwsgi_options.h's
// job. Master only (read before anything is bound); no Python.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace aiowsgi::config {

// One `name = value` line of the wanted section, after substitutions.
struct IniOption {
  std::string name;
  std::string value;
  std::string file;  // the file as named by the user or by `ini =` (for messages)
  int line = 0;
  // A %(name) in the file refers to this option: uWSGI files define names of their own as
  // variables ("project = mysite", "chdir = /srv/%(project)"), which are no options.
  bool variable = false;
};

// What the reader needs from the outside world, replaceable by tests.
struct IniWorld {
  // A file's text, or null when it cannot be read (|error| then says why).
  std::function<std::optional<std::string>(const std::string& path, std::string* error)> read;
  // An environment variable, or null when unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // Whether a path names an existing file or folder (if-exists).
  std::function<bool(const std::string& path)> exists;
  int cpu_count = 1;  // %k
  std::string cwd;    // relative file names resolve against it
};

// The real filesystem, environment and CPU count.
IniWorld real_ini_world();

// Splits "file.ini:section" (section "uwsgi" when absent). A colon followed by a '/' is part
// of the path, not a section separator.
void split_ini_spec(const std::string& spec, std::string* file, std::string* section);

// Reads |spec| ("uwsgi.ini" or "uwsgi.ini:section"). Returns the options in order; every
// problem ("uwsgi.ini:7: %(base): unknown reference") goes to *errors, all of them, and the
// options that could be read are still returned.
std::vector<IniOption> read_uwsgi_ini(const std::string& spec, const IniWorld& world,
                                      std::vector<std::string>* errors);

}  // namespace aiowsgi::config
