// Privileges: server.user / server.group. The master binds its sockets and writes the pidfile
// as the user it was started as (root, to bind port 80), then switches to the configured
// user and group for good, so that every worker it forks runs unprivileged too. Master only;
// no Python.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace aiowsgi::master {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;  // name for initgroups(); "" when only the group changes
};

// Resolves |user| (name or number) and |group| (name or number; "" = the user's primary
// group). Config status naming the key when one does not exist. Both empty: the current
// identity.
Result<Identity> resolve_identity(const std::string& user, const std::string& group);

// Switches the process to |id| for good: supplementary groups (initgroups, or just |id.gid|),
// setgid, setuid, then checks that root cannot be regained. The open log file (by descriptor)
// and the files in |chown_paths| (unix socket files; a symbolic link there is not followed)
// are first given to the new user so that it can reopen/remove them.
// Not root: succeeds only if |id| is already the current identity (nothing to change), else
// a Config status ("changing user needs root"). Call after binding, before forking.
Status drop_privileges(const Identity& id, const std::vector<std::string>& chown_paths);

}  // namespace aiowsgi::master
