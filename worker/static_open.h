// Opening a static file below its [static] map folder without ever leaving it: one
// openat2(RESOLVE_BENEATH) call where the kernel has it (Linux >= 5.6), else a walk that
// opens one component at a time with O_NOFOLLOW (as nginx's ngx_open_file_cache does for
// disable_symlinks). Workers, on the loop's greenlet; no Python.
#pragma once

#include <sys/stat.h>

#include <string>

#include "common/unique_fd.h"

namespace aiowsgi::worker::static_open {

enum class Method {
  kAuto,     // openat2 when the kernel has it, else the walk
  kOpenat2,  // openat2 only (ENOSYS when the kernel lacks it)
  kWalk,     // the component-wise walk only
};

// Opens |rel| (as static_path::relative_path returns it: no "..", no empty segments) below
// the directory |dir_fd| for reading, non-blocking. Symbolic links: openat2 follows those
// that stay below the folder and refuses those that leave it; the walk refuses every link.
// On success *out holds the file and *st its fstat. Returns 0, or an errno value: ENOENT,
// ELOOP/EXDEV (a link refused), ENOTDIR, EACCES, EISDIR (not a regular file), ...
int open_beneath(int dir_fd, const std::string& rel, Method method, UniqueFd* out, struct stat* st);

// True when this kernel answered an openat2 call (false until one was tried, or on ENOSYS).
bool have_openat2();

}  // namespace aiowsgi::worker::static_open
