#include "master/listener_set.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

namespace aiowsgi::master {
namespace {

using Listeners = ListenerSet::Listeners;

bool contains(const Listeners& set, const std::shared_ptr<Listener>& l) {
  return std::find(set.begin(), set.end(), l) != set.end();
}

const char* proto_name(const Listener& l) { return l.uwsgi ? "uwsgi" : l.tls ? "https" : "http"; }

struct Opened {
  Listeners all;    // in configuration order
  Listeners fresh;  // the ones bound here (not supplied by |existing|)
};

// The one place addresses become sockets. A socket |existing| supplies twice (an address
// listed twice, kept by a reload) is listed once.
Result<Opened> open_addresses(const config::ServerConfig& server,
                              const ListenerSet::Existing& existing) {
  Result<std::vector<ListenAddress>> addresses = configured_addresses(server);
  if (!addresses.ok()) return Result<Opened>::error(addresses.status());
  BindOptions options;
  options.backlog = server.backlog;
  options.reuse_port = server.reuse_port;
  options.unix_mode = server.socket_mode;
  Opened out;
  for (const ListenAddress& a : addresses.value()) {
    if (std::shared_ptr<Listener> l = existing ? existing(a) : nullptr) {
      if (!contains(out.all, l)) out.all.push_back(std::move(l));
      continue;
    }
    Result<Listener> bound = bind_listener(a.address, options);
    if (!bound.ok()) {
      for (const auto& l : out.fresh) remove_socket_file(*l);
      return Result<Opened>::error(bound.status());
    }
    auto l = std::make_shared<Listener>(std::move(bound.value()));
    l->uwsgi = a.uwsgi;
    l->tls = a.address.tls;
    out.all.push_back(l);
    out.fresh.push_back(std::move(l));
  }
  return Result<Opened>::ok(std::move(out));
}

}  // namespace

Result<std::vector<ListenAddress>> configured_addresses(const config::ServerConfig& server) {
  std::vector<ListenAddress> out;
  for (bool uwsgi : {false, true}) {
    for (const std::string& text : uwsgi ? server.uwsgi_listen : server.listen) {
      ListenAddress a;
      if (Status s = parse_address(text, &a.address); !s.ok()) {
        return Result<std::vector<ListenAddress>>::error(
            Status::Config("cannot bind " + text + ": " + s.message()));
      }
      a.uwsgi = uwsgi;
      out.push_back(std::move(a));
    }
  }
  return Result<std::vector<ListenAddress>>::ok(std::move(out));
}

ListenerSet::~ListenerSet() {
  // Only the master destroys it (children _exit), so the files are removed once, by the
  // process that created them.
  for (const auto& l : current_) remove_socket_file(*l);
  for (const auto& l : previous_) remove_socket_file(*l);
}

ListenerSet::ListenerSet(ListenerSet&& o) noexcept
    : current_(std::exchange(o.current_, {})),
      previous_(std::exchange(o.previous_, {})),
      changing_(std::exchange(o.changing_, false)) {}

ListenerSet& ListenerSet::operator=(ListenerSet&& o) noexcept {
  if (this != &o) {
    ListenerSet gone(std::move(*this));  // removes our files
    current_ = std::exchange(o.current_, {});
    previous_ = std::exchange(o.previous_, {});
    changing_ = std::exchange(o.changing_, false);
  }
  return *this;
}

Result<ListenerSet> ListenerSet::open(const config::ServerConfig& server, const Existing& existing,
                                      std::string_view existing_note) {
  Result<Opened> opened = open_addresses(server, existing);
  if (!opened.ok()) return Result<ListenerSet>::error(opened.status());
  for (const auto& l : opened.value().all) {
    bool supplied = !contains(opened.value().fresh, l);
    spdlog::info("listening on {} ({}{})", l->bound_name, proto_name(*l),
                 supplied ? existing_note : "");
  }
  return Result<ListenerSet>::ok(ListenerSet(std::move(opened.value().all)));
}

std::vector<ListenSocket> ListenerSet::worker_sockets() const {
  std::vector<ListenSocket> out;
  out.reserve(current_.size());
  for (const auto& l : current_) {
    ListenSocket ls;
    ls.fd = l->fd.get();
    ls.name = l->name;
    ls.uwsgi = l->uwsgi;
    ls.tls = l->tls;
    out.push_back(std::move(ls));
  }
  return out;
}

std::vector<std::string> ListenerSet::unix_paths() const {
  std::vector<std::string> out;
  for (const auto& l : current_) out.push_back(l->unix_path);
  return out;
}

Status ListenerSet::change(const config::ServerConfig& fresh, const config::ServerConfig& old) {
  auto kept = [this](const ListenAddress& a) -> std::shared_ptr<Listener> {
    for (const auto& l : current_) {
      if (l->name == a.address.text && l->uwsgi == a.uwsgi) return l;
    }
    return nullptr;
  };
  Result<Opened> opened = open_addresses(fresh, kept);
  if (!opened.ok()) return opened.status();
  Listeners& next = opened.value().all;
  const Listeners& added = opened.value().fresh;
  // The backlog of a listening socket can be changed in place; SO_REUSEPORT cannot (it
  // matters at bind time), so it applies to newly bound addresses only.
  if (fresh.backlog != old.backlog) {
    for (const auto& l : next) {
      if (contains(added, l)) continue;
      if (::listen(l->fd.get(), fresh.backlog) != 0) {
        spdlog::warn("cannot change the backlog of {}: {}", l->bound_name, errno_string(errno));
      }
    }
    spdlog::info("listen backlog {} -> {}", old.backlog, fresh.backlog);
  }
  if (fresh.reuse_port != old.reuse_port) {
    spdlog::warn(
        "server.reuse_port changed: applies to newly bound addresses only; restart the "
        "master to apply it to the others");
  }
  bool removed = std::any_of(current_.begin(), current_.end(),
                             [&](const auto& l) { return !contains(next, l); });
  if (added.empty() && !removed && next.size() == current_.size()) {
    current_ = std::move(next);  // same sockets, possibly reordered
    return Status::Ok();
  }
  for (const auto& l : added) {
    spdlog::info("listening on {} ({})", l->bound_name, proto_name(*l));
  }
  for (const auto& l : current_) {
    if (!contains(next, l)) {
      spdlog::info("{} is no longer in the configuration; it closes once the reload completes",
                   l->bound_name);
    }
  }
  previous_ = std::move(current_);
  current_ = std::move(next);
  changing_ = true;
  return Status::Ok();
}

void ListenerSet::commit() {
  if (!changing_) return;
  for (const auto& l : previous_) {
    if (contains(current_, l)) continue;
    // The old workers still hold their copies while they drain (they no longer accept).
    spdlog::info("closed listener {} (removed from the configuration)", l->bound_name);
    remove_socket_file(*l);
  }
  previous_.clear();
  changing_ = false;
}

void ListenerSet::rollback() {
  if (!changing_) return;
  for (const auto& l : current_) {
    if (contains(previous_, l)) continue;
    spdlog::info("closed new listener {} (the reload failed)", l->bound_name);
    remove_socket_file(*l);
  }
  current_ = std::move(previous_);
  previous_.clear();
  changing_ = false;
}

std::vector<int> ListenerSet::removed_fds() const {
  std::vector<int> fds;
  for (const auto& l : previous_) {
    if (!contains(current_, l) && l->fd) fds.push_back(l->fd.get());
  }
  return fds;
}

}  // namespace aiowsgi::master
