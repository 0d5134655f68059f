#include "master/listeners.h"

#include <errno.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace aiowsgi::master {
namespace {

Status bind_error(const SocketAddress& address, const std::string& what, int err) {
  return Status::Io("cannot " + what + " " + address.text, err);
}

Status set_int_option(int fd, int level, int name, int value, const char* what,
                      const SocketAddress& address) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return bind_error(address, std::string("set ") + what + " on", errno);
  }
  return Status::Ok();
}

// A socket file at |path| is stale when nobody accepts on it any more. Unlinking a live
// one would silently steal a running server's address, and unlinking a regular file could
// destroy data, so both are errors.
Status clear_stale_socket(const SocketAddress& address) {
  struct stat st;
  if (::lstat(address.unix_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return bind_error(address, "stat", errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::Io("cannot bind " + address.text + ": the path exists and is not a socket",
                      EEXIST);
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return bind_error(address, "probe", errno);
  if (::connect(probe.get(), address.addr(), address.length) == 0) {
    return Status::Io("cannot bind " + address.text + ": another server is listening on it",
                      EADDRINUSE);
  }
  if (errno != ECONNREFUSED) return bind_error(address, "probe", errno);
  if (::unlink(address.unix_path.c_str()) != 0 && errno != ENOENT) {
    return bind_error(address, "remove the stale socket file of", errno);
  }
  spdlog::info("removed stale socket file {}", address.unix_path);
  return Status::Ok();
}

}  // namespace

Result<Listener> bind_listener(const SocketAddress& address, const BindOptions& options) {
  int domain = AF_INET;
  if (address.family == SocketAddress::Family::kInet6) domain = AF_INET6;
  if (address.family == SocketAddress::Family::kUnix) domain = AF_UNIX;

  UniqueFd fd(::socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Result<Listener>::error(bind_error(address, "create a socket for", errno));

  if (domain != AF_UNIX) {
    // Rebinding right after a restart must not wait for TIME_WAIT connections to expire.
    if (Status s = set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", address);
        !s.ok()) {
      return Result<Listener>::error(std::move(s));
    }
    if (options.reuse_port) {
      if (Status s = set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", address);
          !s.ok()) {
        return Result<Listener>::error(std::move(s));
      }
    }
    // "[::]:80" must mean IPv6 only, so that "0.0.0.0:80" can be listed beside it.
    if (domain == AF_INET6) {
      if (Status s = set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY", address);
          !s.ok()) {
        return Result<Listener>::error(std::move(s));
      }
    }
  } else {
    if (Status s = clear_stale_socket(address); !s.ok())
      return Result<Listener>::error(std::move(s));
  }

  if (::bind(fd.get(), address.addr(), address.length) != 0) {
    return Result<Listener>::error(bind_error(address, "bind", errno));
  }
  Listener l;
  if (domain == AF_UNIX) {
    // Record what we created before anything can fail, so the file is removed on error.
    l.unix_path = address.unix_path;
    struct stat st;
    if (::stat(address.unix_path.c_str(), &st) == 0) {
      l.unix_dev = st.st_dev;
      l.unix_ino = st.st_ino;
    }
    // Before listen(): no client can connect while the file still has the umask's mode.
    // The proxy in front (nginx as www-data) needs write permission to connect.
    if (options.unix_mode != 0 && ::chmod(address.unix_path.c_str(), options.unix_mode) != 0) {
      int err = errno;
      ::unlink(l.unix_path.c_str());
      return Result<Listener>::error(bind_error(address, "chmod", err));
    }
  }
  if (::listen(fd.get(), options.backlog) != 0) {
    int err = errno;
    if (!l.unix_path.empty()) ::unlink(l.unix_path.c_str());
    return Result<Listener>::error(bind_error(address, "listen on", err));
  }
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    l.bound_name = format_sockaddr(reinterpret_cast<const sockaddr*>(&local), len);
  } else {
    l.bound_name = address.text;
  }
  l.fd = std::move(fd);
  l.name = address.text;
  return Result<Listener>::ok(std::move(l));
}

void remove_socket_files(const std::vector<Listener>& listeners) {
  for (const Listener& l : listeners) remove_socket_file(l);
}

void remove_socket_file(const Listener& l) {
  if (l.unix_path.empty()) return;
  struct stat st;
  if (::lstat(l.unix_path.c_str(), &st) != 0) return;
  if (st.st_dev != l.unix_dev || st.st_ino != l.unix_ino) return;  // not ours any more
  ::unlink(l.unix_path.c_str());
}

}  // namespace aiowsgi::master
