// ListenerSet: the listen sockets a configuration asks for (server.listen, then
// server.uwsgi_listen), opened before the first fork and changed by a reload: kept addresses
// reuse their sockets, new ones are bound, removed ones close once the reload completes (or
// the new ones when it fails). Binding at start-up, socket activation and the reload all open
// their sockets through open(). Removes the unix socket files it created when destroyed.
// Master only; no Python.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.h"
#include "common/result.h"
#include "common/status.h"
#include "common/worker_context.h"
#include "config/config.h"
#include "master/listeners.h"

namespace aiowsgi::master {

// One listen address of the configuration, parsed.
struct ListenAddress {
  SocketAddress address;
  bool uwsgi = false;  // from server.uwsgi_listen
};

// server.listen then server.uwsgi_listen, parsed in order. A Config status names the first
// address that does not parse: "cannot bind TEXT: reason".
Result<std::vector<ListenAddress>> configured_addresses(const config::ServerConfig& server);

class ListenerSet {
 public:
  using Listeners = std::vector<std::shared_ptr<Listener>>;
  // An open socket for |a| (inherited from the service manager, or kept from the set being
  // changed), or nullptr when it must be bound.
  using Existing = std::function<std::shared_ptr<Listener>(const ListenAddress& a)>;

  ListenerSet() = default;
  ~ListenerSet();
  ListenerSet(ListenerSet&& o) noexcept;
  ListenerSet& operator=(ListenerSet&& o) noexcept;
  ListenerSet(const ListenerSet&) = delete;
  ListenerSet& operator=(const ListenerSet&) = delete;

  // Opens every configured address in order: the socket |existing| supplies, else one bound
  // with server.backlog and server.reuse_port. Logs "listening on ADDR (http|uwsgi)" for each,
  // with |existing_note| appended for the supplied ones. On failure the sockets bound here
  // are closed, their files removed, and the first error is returned.
  static Result<ListenerSet> open(const config::ServerConfig& server,
                                  const Existing& existing = nullptr,
                                  std::string_view existing_note = "");

  const Listeners& current() const { return current_; }
  // The sockets as a worker gets them (WorkerContext::sockets), in configuration order.
  std::vector<ListenSocket> worker_sockets() const;
  // The unix socket files this set created (handed to the new user by drop_privileges).
  std::vector<std::string> unix_paths() const;

  // --- reload ---
  // Moves to |fresh|'s addresses (|old| is the configuration being replaced): sockets whose
  // address and protocol stay are kept (a changed backlog is applied to them in place), new
  // addresses are bound. On error nothing changed and the status says which address failed.
  // Until commit() or rollback(), removed sockets stay open for the old workers.
  Status change(const config::ServerConfig& fresh, const config::ServerConfig& old);
  // The reload completed: the removed sockets are closed (here; the old workers' copies go
  // with them) and their files removed.
  void commit();
  // The reload failed: the sockets change() bound are closed and the previous set restored.
  void rollback();
  // During a change, the fds of the sockets being removed: a new generation's worker must
  // not keep them open, or they would accept connections nobody serves once closed here.
  std::vector<int> removed_fds() const;

 private:
  explicit ListenerSet(Listeners current) : current_(std::move(current)) {}

  Listeners current_;
  Listeners previous_;     // during a change: restored by rollback(), closed by commit()
  bool changing_ = false;  // change() replaced current_; previous_ is valid
};

}  // namespace aiowsgi::master
