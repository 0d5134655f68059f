// Pidfile: the master's pid written to server.pidfile after binding and removed at exit,
// for init scripts and `kill -HUP $(cat ...)`. Master only; no Python.
#pragma once

#include <string>

#include "common/status.h"

namespace aiowsgi::master {

// Writes "<getpid()>\n" to |path| (created 0644 or truncated). Io status on failure.
Status write_pidfile(const std::string& path);

// Removes |path| if it still holds this process's pid (a newer master may have replaced
// it). Never fails loudly: called on the way out.
void remove_pidfile(const std::string& path);

}  // namespace aiowsgi::master
