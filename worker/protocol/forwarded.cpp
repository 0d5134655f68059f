#include "worker/protocol/forwarded.h"

#include <optional>
#include <vector>

#include "common/url_prefix.h"
#include "worker/protocol/char_class.h"

namespace aiowsgi::worker {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The elements of a comma-separated list, trimmed, right to left through |fn| until it
// returns false.
template <typename Fn>
void each_from_right(std::string_view list, Fn fn) {
  while (true) {
    size_t comma = list.rfind(',');
    std::string_view item = trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
    if (!fn(item)) return;
    if (comma == std::string_view::npos) return;
    list = list.substr(0, comma);
  }
}

// The last element of a comma-separated list, trimmed ("" for an empty list).
std::string_view rightmost(std::string_view list) {
  std::string_view last;
  each_from_right(list, [&](std::string_view item) {
    last = item;
    return false;
  });
  return last;
}

// A port number, decimal 1..65535, or "".
std::string port_of(std::string_view v) {
  if (v.empty() || v.size() > 5) return "";
  unsigned n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return "";
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n >= 1 && n <= 65535 ? std::string(v) : "";
}

// A node of X-Forwarded-For or Forwarded's for=: "1.2.3.4", "1.2.3.4:5678", "[::1]",
// "[::1]:5678", "::1". Null for anything else; *port is the text after the address's ':'
// ("" without one), not yet checked (RFC 7239 allows an obfuscated "_port").
std::optional<IpAddress> node_address(std::string_view node, std::string_view* port) {
  *port = {};
  if (std::optional<IpAddress> a = IpAddress::parse(node)) return a;
  if (!node.empty() && node.front() == '[') {
    size_t close = node.find(']');
    if (close == std::string_view::npos || close + 1 >= node.size() || node[close + 1] != ':')
      return std::nullopt;
    *port = node.substr(close + 2);
    return IpAddress::parse(node.substr(0, close + 1));
  }
  size_t colon = node.find(':');
  if (colon != std::string_view::npos && node.find(':', colon + 1) == std::string_view::npos) {
    std::optional<IpAddress> a = IpAddress::parse(node.substr(0, colon));
    *port = node.substr(colon + 1);
    if (a && a->v4) return a;
  }
  return std::nullopt;
}

// The client of a list of nodes read right to left (see resolve_forwarded) into |out|.
void pick_client(const std::vector<std::string_view>& right_to_left, const IpNetworks& trusted,
                 ForwardedView* out) {
  std::optional<IpAddress> last;
  std::string_view last_port;
  for (std::string_view node : right_to_left) {
    std::string_view port;
    std::optional<IpAddress> a = node_address(node, &port);
    if (!a) return;
    last = a;
    last_port = port;
    if (!trusted.contains(*a)) break;
  }
  if (!last) return;
  out->client = last->text();
  out->client_port = port_of(last_port);
}

std::string scheme_of(std::string_view v) {
  if (char_class::iequals(v, "https")) return "https";
  if (char_class::iequals(v, "http")) return "http";
  return "";
}

// RFC 9110 4.2 / RFC 3986 3.2.2: reg-name, IPv4 or [IPv6], with an optional port. Only the
// characters; the app's own host validation (Django's ALLOWED_HOSTS) judges the rest.
bool is_host(std::string_view v) {
  if (v.empty() || v.size() > 255) return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

// One forwarded-pair's value, RFC 7239 4: a token or a quoted-string (whose quoted-pairs are
// taken as written: no value this server reads has a reason to escape anything).
std::string_view pair_value(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

struct ForwardedElement {
  std::string_view for_, proto, host;
};

// One forwarded-element, "for=1.2.3.4;proto=https;host=example.com". Unknown parameters
// are skipped; a pair without '=' makes the element unusable (all members "").
ForwardedElement parse_element(std::string_view e) {
  ForwardedElement out;
  while (!e.empty()) {
    size_t semi = e.find(';');
    std::string_view pair = trim(e.substr(0, semi));
    e = semi == std::string_view::npos ? std::string_view() : e.substr(semi + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return {};
    std::string_view name = trim(pair.substr(0, eq)), value = pair_value(pair.substr(eq + 1));
    if (char_class::iequals(name, "for")) {
      out.for_ = value;
    } else if (char_class::iequals(name, "proto")) {
      out.proto = value;
    } else if (char_class::iequals(name, "host")) {
      out.host = value;
    }
  }
  return out;
}

}  // namespace

bool ForwardedFields::offer(std::string_view name, std::string_view value) {
  if (name.size() < 9) return false;
  const char c = char_class::lower(name[0]);
  if (c == 'f') {
    if (!char_class::iequals(name, "forwarded")) return false;
    forwarded = value;
    return true;
  }
  if (c != 'x') return false;
  if (char_class::iequals(name, "x-script-name")) {
    if (x_prefix.empty()) x_prefix = value;
    return true;
  }
  if (name.size() < 13 || !char_class::iequals(name.substr(0, 12), "x-forwarded-")) return false;
  std::string_view rest = name.substr(12);
  if (char_class::iequals(rest, "for")) {
    x_for = value;
  } else if (char_class::iequals(rest, "proto")) {
    x_proto = value;
  } else if (char_class::iequals(rest, "host")) {
    x_host = value;
  } else if (char_class::iequals(rest, "port")) {
    x_port = value;
  } else if (char_class::iequals(rest, "prefix")) {
    x_prefix = value;  // the de-facto standard name wins over X-Script-Name
  } else {
    return false;
  }
  return true;
}

ForwardedFields forwarded_fields(const RequestParser& p) {
  ForwardedFields f;
  for (size_t i = 0; i < p.header_count(); ++i) f.offer(p.header_name(i), p.header_value(i));
  return f;
}

ForwardedView resolve_forwarded(const ForwardedFields& f, const IpNetworks& trusted) {
  ForwardedView out;
  std::vector<std::string_view> nodes;
  if (!f.x_for.empty()) {
    each_from_right(f.x_for, [&](std::string_view item) {
      nodes.push_back(item);
      return true;
    });
    pick_client(nodes, trusted, &out);
  }
  if (!f.forwarded.empty()) {
    std::vector<ForwardedElement> elements;  // right to left
    each_from_right(f.forwarded, [&](std::string_view item) {
      elements.push_back(parse_element(item));
      return true;
    });
    if (f.x_for.empty()) {
      nodes.clear();
      for (const ForwardedElement& e : elements) nodes.push_back(e.for_);
      pick_client(nodes, trusted, &out);
    }
    for (const ForwardedElement& e : elements) {
      if (out.scheme.empty() && !e.proto.empty()) out.scheme = scheme_of(e.proto);
      if (out.host.empty() && is_host(e.host)) out.host = std::string(e.host);
    }
  }
  // A chain of proxies may append to these: the rightmost is what the nearest proxy saw.
  if (std::string v = scheme_of(rightmost(f.x_proto)); !v.empty()) out.scheme = v;
  if (std::string_view v = rightmost(f.x_host); is_host(v)) out.host = std::string(v);
  if (std::string v = port_of(rightmost(f.x_port)); !v.empty()) out.port = v;
  if (!f.x_prefix.empty()) {
    std::string p;
    if (normalize_prefix(trim(f.x_prefix), &p)) out.prefix = p;
  }
  return out;
}

}  // namespace aiowsgi::worker
