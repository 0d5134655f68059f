// Listener: one listen socket of the master, and how it is bound (bind_listener) and its
// unix socket file removed. The set of them a configuration asks for is a ListenerSet
// (master/listener_set.h). Workers inherit the fds. Master only; no Python.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/address.h"
#include "common/result.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace aiowsgi::master {

struct Listener {
  UniqueFd fd;             // listening, non-blocking, close-on-exec
  std::string name;        // as configured ("127.0.0.1:0", "unix:/run/app.sock")
  std::string bound_name;  // the real local address ("127.0.0.1:41234")
  bool uwsgi = false;      // uwsgi binary protocol instead of HTTP
  bool tls = false;        // https://: the workers serve TLS on it
  std::string unix_path;   // socket file to remove at exit ("" for TCP)
  dev_t unix_dev = 0;      // identity of the file we created, so remove_socket_files()
  ino_t unix_ino = 0;      // never unlinks a file that replaced ours
};

struct BindOptions {
  int backlog = 1024;
  bool reuse_port = false;
  int unix_mode = 0;  // chmod() a unix socket file to this after bind; 0 = leave it
};

// Binds and listens on |address|: SO_REUSEADDR, SO_REUSEPORT when asked, IPV6_V6ONLY for
// IPv6, SOCK_NONBLOCK | SOCK_CLOEXEC. A unix socket file left by a dead server is unlinked
// first (a live one, or a file that is not a socket, is an error). On failure returns an Io
// status naming the address: "cannot bind 127.0.0.1:80: Permission denied".
Result<Listener> bind_listener(const SocketAddress& address, const BindOptions& options);

// Removes the unix socket file |listener| created, if it is still ours (a file that replaced
// it is left alone). Called at master exit and for a listener a reload removed.
void remove_socket_file(const Listener& listener);
// The same for each of |listeners|.
void remove_socket_files(const std::vector<Listener>& listeners);

}  // namespace aiowsgi::master
