// Listeners: the listen sockets the master binds once, before forking, from server.listen
// (HTTP) and server.uwsgi_listen (uwsgi protocol). Workers inherit the fds; the sockets
// survive reloads and unix socket files are removed when the master exits. Master only;
// no Python.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/address.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "config/config.h"

namespace aiowsgi::master {

struct Listener {
  UniqueFd fd;             // listening, non-blocking, close-on-exec
  std::string name;        // as configured ("127.0.0.1:0", "unix:/run/app.sock")
  std::string bound_name;  // the real local address ("127.0.0.1:41234")
  bool uwsgi = false;      // uwsgi binary protocol instead of HTTP
  std::string unix_path;   // socket file to remove at exit ("" for TCP)
  dev_t unix_dev = 0;      // identity of the file we created, so remove_socket_files()
  ino_t unix_ino = 0;      // never unlinks a file that replaced ours
};

struct BindOptions {
  int backlog = 1024;
  bool reuse_port = false;
};

// Binds and listens on |address|: SO_REUSEADDR, SO_REUSEPORT when asked, IPV6_V6ONLY for
// IPv6, SOCK_NONBLOCK | SOCK_CLOEXEC. A unix socket file left by a dead server is unlinked
// first (a live one, or a file that is not a socket, is an error). On failure returns an Io
// status naming the address: "cannot bind 127.0.0.1:80: Permission denied".
Status bind_listener(const SocketAddress& address, const BindOptions& options, Listener* out);

// Parses and binds every server.listen then server.uwsgi_listen address, in order, and logs
// "listening on ADDR (http|uwsgi)" for each. On the first failure the sockets bound so far
// are closed (their files removed) and the error is returned; *out is then empty.
Status bind_all(const config::ServerConfig& server, std::vector<Listener>* out);

// Removes the unix socket files we created (if they are still ours). Called at master exit.
void remove_socket_files(const std::vector<Listener>& listeners);
// The same for one listener (a listener removed from the file by a reload).
void remove_socket_file(const Listener& listener);

}  // namespace aiowsgi::master
