// systemd integration of the master, without libsystemd: socket activation (the listen
// sockets a service manager passes as fds 3.. with LISTEN_FDS/LISTEN_PID) and readiness
// notification (sd_notify's datagrams to $NOTIFY_SOCKET: READY, RELOADING, STOPPING).
// Master only, no Python. Both protocols are in sd_listen_fds(3) and sd_notify(3).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/address.h"
#include "common/result.h"
#include "common/status.h"
#include "config/config.h"
#include "master/lifecycle.h"
#include "master/listener_set.h"

namespace aiowsgi::master {

// --- readiness notification ------------------------------------------------------------------

// Reads $NOTIFY_SOCKET ("/path" or "@abstract"), opens a datagram socket for it and unsets
// the variable, so that workers and the app never talk to the service manager in our name.
// Call once in the master, before the first fork. Without the variable, notify_systemd()
// does nothing.
void init_systemd_notify();

// Sends |state| ("READY=1\nSTATUS=serving", newline-separated assignments) if
// init_systemd_notify() found a socket. Failures are logged at debug level and otherwise
// ignored: the service manager may be gone, the server is not.
void notify_systemd(std::string_view state);

// The $NOTIFY_SOCKET init_systemd_notify() found ("" when none): an upgrade passes it on to
// the new master, which then tells the service manager its pid.
std::string systemd_notify_socket();
// Sends nothing more: the master an upgrade replaced must not report STOPPING for the
// service the new master serves.
void silence_systemd_notify();

// The notification for a lifecycle transition of the Arbiter, or "" when none is due:
// READY=1 (with MAINPID) when the first generation is serving, RELOADING=1 on HUP and READY=1
// once the reload ends (done or failed), STOPPING=1 when a stop begins.
std::string systemd_state_for(MasterState from, MasterState to);

// notify_systemd(systemd_state_for(from, to)), adding MONOTONIC_USEC to RELOADING=1 as
// systemd 253+ wants. Called by the Arbiter on every state change.
void notify_systemd_transition(MasterState from, MasterState to);

// --- socket activation -----------------------------------------------------------------------

// The fds passed by socket activation: 3 .. 3+LISTEN_FDS-1 when LISTEN_PID is this process,
// else none. Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES either way (the workers must
// not take them for their own). A malformed value is logged and treated as none.
std::vector<int> take_systemd_listen_fds();

// Builds the listeners from |inherited| fds and the configured addresses: each address of
// server.listen then server.uwsgi_listen takes the inherited socket whose local address
// (getsockname) is the same; an address no inherited socket has is bound as usual
// (ListenerSet::open). An inherited fd that is not a listening stream socket, or that no
// configured address claims, is an error: serving a socket the config does not mention,
// with a guessed protocol, would hide a mismatch between the .socket unit and server.toml.
// Adopted sockets are made non-blocking and close-on-exec; their unix socket files belong to
// the service manager and are never removed. Takes ownership of every fd in |inherited|;
// on error those and the sockets bound so far are closed.
Result<ListenerSet> adopt_listeners(const config::ServerConfig& server,
                                    const std::vector<int>& inherited);

// True when |fd| is a listening stream socket bound to |want| (getsockname; a unix socket by
// its path, an abstract one by its name): an inherited socket that can serve that address.
bool socket_listens_on(int fd, const SocketAddress& want);

// take_systemd_listen_fds(), then adopt_listeners() when there are any, else
// ListenerSet::open() binds every address.
Result<ListenerSet> open_listeners(const config::ServerConfig& server);

}  // namespace aiowsgi::master
