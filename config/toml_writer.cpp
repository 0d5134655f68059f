// config/toml_writer.h: each key rendered through its row of the key table.
#include "config/toml_writer.h"

#include <cstdio>
#include <type_traits>

#include "config/keys.h"
#include "config/values.h"

namespace aiowsgi::config {
namespace {

// One key's value in TOML, "" for a scalar equal to |defaults|' or an empty list.
std::string render_field(const Key& key, Config& config, Config& defaults) {
  return std::visit(
      [&](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        auto* d = std::get<T*>(key.field(defaults));
        if (*p == *d && !(key.table == "server" && key.name == "workers")) return "";
        if constexpr (std::is_same_v<T, bool>) {
          return *p ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) {
          if (key.type == Type::kFileMode) {
            char octal[16];
            snprintf(octal, sizeof octal, "\"%o\"", static_cast<unsigned>(*p));
            return octal;
          }
          return std::to_string(*p);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_double(*p);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return quote(*p);
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string out = "[";
          for (const std::string& s : *p) out.append(out.size() > 1 ? ", " : "").append(quote(s));
          return out + "]";
        } else {
          std::string out = "{";
          for (const auto& [name, value] : *p) {
            out.append(out.size() > 1 ? ", " : " ").append(quote(name)).append(" = ");
            out.append(quote(value));
          }
          return out + " }";
        }
      },
      key.field(config));
}

}  // namespace

std::string to_toml(const Config& config) {
  std::string out;
  for (const std::string& note : config.notes) out += "# " + one_line(note) + "\n";
  if (!config.notes.empty()) out += "\n";
  // The fields are only read; Key::field takes a mutable Config to serve the loader too.
  Config& c = const_cast<Config&>(config);
  Config defaults;
  for (std::string_view table : tables()) {
    std::string lines;
    for (const Key& key : keys()) {
      if (key.table != table) continue;
      std::string value = render_field(key, c, defaults);
      if (!value.empty()) lines.append(key.name).append(" = ").append(value) += "\n";
    }
    if (!lines.empty()) out.append("[").append(table).append("]\n").append(lines) += "\n";
  }
  return out;
}

}  // namespace aiowsgi::config
