#include "worker/static_open.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace aiowsgi::worker::static_open {
namespace {

// -1: not tried yet, 0: ENOSYS seen, 1: works.
int g_openat2 = -1;

constexpr int kFileFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

int via_openat2(int dir_fd, const std::string& rel, UniqueFd* out) {
  open_how how{};
  how.flags = static_cast<uint64_t>(kFileFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) {
      g_openat2 = 1;
      out->reset(static_cast<int>(fd));
      return 0;
    }
    if (errno == EINTR) continue;
    // EAGAIN: a concurrent rename made the kernel give up on a lookup it could not prove
    // safe; RESOLVE_BENEATH asks the caller to retry. A single retry keeps the loop bounded.
    if (errno == EAGAIN) {
      fd = syscall(SYS_openat2, dir_fd, rel.c_str(), &how, sizeof how);
      if (fd >= 0) {
        out->reset(static_cast<int>(fd));
        return 0;
      }
    }
    if (errno == ENOSYS) g_openat2 = 0;
    return errno;
  }
}

int via_walk(int dir_fd, const std::string& rel, UniqueFd* out) {
  std::string_view rest = rel;
  UniqueFd cur;  // empty: still at dir_fd
  for (;;) {
    size_t slash = rest.find('/');
    std::string seg(rest.substr(0, slash));
    if (seg.empty() || seg == "." || seg == "..") return ENOENT;
    int at = cur ? cur.get() : dir_fd;
    bool last = slash == std::string_view::npos;
    int flags = last ? kFileFlags | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd;
    do {
      fd = ::openat(at, seg.c_str(), flags);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno;
    if (last) {
      out->reset(fd);
      return 0;
    }
    cur.reset(fd);
    rest.remove_prefix(slash + 1);
  }
}

}  // namespace

int open_beneath(int dir_fd, const std::string& rel, Method method, UniqueFd* out,
                 struct stat* st) {
  if (rel.empty() || rel[0] == '/') return ENOENT;
  UniqueFd fd;
  int err;
  if (method == Method::kOpenat2 || (method == Method::kAuto && g_openat2 != 0)) {
    err = via_openat2(dir_fd, rel, &fd);
    if (err == ENOSYS && method == Method::kAuto) err = via_walk(dir_fd, rel, &fd);
  } else {
    err = via_walk(dir_fd, rel, &fd);
  }
  if (err != 0) return err;
  if (fstat(fd.get(), st) != 0) return errno;
  if (!S_ISREG(st->st_mode)) return EISDIR;
  *out = std::move(fd);
  return 0;
}

bool have_openat2() { return g_openat2 == 1; }

}  // namespace aiowsgi::worker::static_open
