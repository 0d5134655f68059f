// URL prefixes: where an app is mounted ([app] mount, SCRIPT_NAME in the environment, a
// trusted proxy's X-Forwarded-Prefix). Checked by the master's config loader and used by the
// workers to split each request path into SCRIPT_NAME and PATH_INFO. Pure; no Python.
#pragma once

#include <string>
#include <string_view>

namespace aiowsgi {

// Whether a percent-decoded request path lies under |prefix| ("/app": "/app" and "/app/x" do,
// "/apple" does not). An empty prefix holds every path.
bool under_prefix(std::string_view path, std::string_view prefix);

// A prefix as a user or a proxy may write it, normalized: "/app/" -> "/app", "/" -> "".
// False for one that does not start with '/', holds "//" or characters outside RFC 3986
// pchar ('%' escapes, spaces and controls included).
bool normalize_prefix(std::string_view in, std::string* out);

}  // namespace aiowsgi
