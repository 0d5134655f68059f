// A loaded Config written back as server.toml: what `--ini FILE --print-toml` prints, the
// migration from a uWSGI ini file. Master only; no Python.
#pragma once

#include <string>

#include "config/config.h"

namespace aiowsgi::config {

// Every key whose value differs from its default (and [server] workers, whose default
// depends on the machine), table by table in the documented order, with |config.notes| as
// comments at the top. Loading the text gives back the same settings.
std::string to_toml(const Config& config);

}  // namespace aiowsgi::config
