#include "master/privileges.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/numeric_id.h"

namespace aiowsgi::master {

Result<Identity> resolve_identity(const std::string& user, const std::string& group) {
  Identity id;
  id.uid = ::getuid();
  id.gid = ::getgid();
  std::vector<char> buf(16384);
  if (!user.empty()) {
    passwd pw{};
    passwd* found = nullptr;
    uint32_t number = 0;
    IdText kind = parse_numeric_id(user, &number);
    if (kind == IdText::kOutOfRange) {
      return Result<Identity>::error(Status::Config("[server] user = \"" + user +
                                                    "\": uid out of range (0.." +
                                                    std::to_string(kMaxNumericId) + ")"));
    }
    if (kind == IdText::kNumber) {
      id.uid = static_cast<uid_t>(number);
      if (getpwuid_r(id.uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
        id.gid = found->pw_gid;
        id.user = found->pw_name;
      } else if (group.empty()) {
        return Result<Identity>::error(Status::Config(
            "[server] user = \"" + user + "\": a uid without a passwd entry needs [server] group"));
      }
    } else {
      if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
        return Result<Identity>::error(
            Status::Config("[server] user = \"" + user + "\": no such user"));
      }
      id.uid = found->pw_uid;
      id.gid = found->pw_gid;
      id.user = found->pw_name;
    }
  }
  if (!group.empty()) {
    uint32_t number = 0;
    IdText kind = parse_numeric_id(group, &number);
    if (kind == IdText::kOutOfRange) {
      return Result<Identity>::error(Status::Config("[server] group = \"" + group +
                                                    "\": gid out of range (0.." +
                                                    std::to_string(kMaxNumericId) + ")"));
    }
    if (kind == IdText::kNumber) {
      id.gid = static_cast<gid_t>(number);
    } else {
      ::group gr{};
      ::group* found = nullptr;
      if (getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
        return Result<Identity>::error(
            Status::Config("[server] group = \"" + group + "\": no such group"));
      }
      id.gid = found->gr_gid;
    }
  }
  return Result<Identity>::ok(std::move(id));
}

Status drop_privileges(const Identity& id, const std::vector<std::string>& chown_paths) {
  if (::geteuid() != 0) {
    // Nothing to drop: accept a configuration that names the current identity (the same
    // file serves under a root-started service and in a developer's shell).
    if (id.uid == ::geteuid() && id.gid == ::getegid()) return Status::Ok();
    return Status::Config("[server] user/group: changing to uid " + std::to_string(id.uid) +
                          " gid " + std::to_string(id.gid) +
                          " needs root (the master runs as uid " + std::to_string(::geteuid()) +
                          ")");
  }
  // The log file by descriptor, socket files without following a link: root must not give
  // away a file that someone swapped in at one of these paths.
  if (Status s = log::chown_file(id.uid, id.gid); !s.ok()) return s;
  for (const std::string& path : chown_paths) {
    if (!path.empty() &&
        ::fchownat(AT_FDCWD, path.c_str(), id.uid, id.gid, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno != ENOENT) {
      return Status::Io("cannot chown " + path, errno);
    }
  }
  // Groups first: once the uid is not root, the group list cannot change any more.
  if (!id.user.empty() && id.uid != 0) {
    if (::initgroups(id.user.c_str(), id.gid) != 0) return Status::Io("initgroups", errno);
  } else if (::setgroups(1, &id.gid) != 0) {
    return Status::Io("setgroups", errno);
  }
  if (::setresgid(id.gid, id.gid, id.gid) != 0) return Status::Io("setgid", errno);
  if (::setresuid(id.uid, id.uid, id.uid) != 0) return Status::Io("setuid", errno);
  if (id.uid != 0 && ::setuid(0) == 0) {
    return Status::Config("setuid(0) still works after dropping privileges; refusing to run");
  }
  return Status::Ok();
}

}  // namespace aiowsgi::master
