// --help and --print-keys, generated from the key table (config/keys.cpp) and the command
// line's own options (config/command_line.cpp). Master only; no Python.
#include <string>
#include <string_view>

#include "config/command_line.h"
#include "config/config.h"
#include "config/keys.h"
#include "config/values.h"

namespace aiowsgi::config {
namespace {

constexpr size_t kDocColumn = 28;
constexpr size_t kWidth = 99;

// "  left                      doc", the doc on the next line when |left| is too wide.
void line(std::string* out, const std::string& left, std::string_view doc) {
  out->append(left);
  if (doc.empty()) {
    out->append("\n");
    return;
  }
  if (left.size() + 2 > kDocColumn) {
    out->append("\n").append(kDocColumn, ' ');
  } else {
    out->append(kDocColumn - left.size(), ' ');
  }
  // A long doc continues on the next line before its "(range; default)".
  size_t paren = doc.rfind(" (");
  if (kDocColumn + doc.size() > kWidth && paren != std::string_view::npos && paren > 0) {
    out->append(doc.substr(0, paren)).append("\n").append(kDocColumn, ' ');
    doc.remove_prefix(paren + 1);
  }
  out->append(doc).append("\n");
}

// "  -p, --workers N" / "      --processes N"
std::string flag_text(char short_name, std::string_view name, std::string_view metavar) {
  std::string s = short_name != 0 ? std::string("  -") + short_name + ", " : "      ";
  s.append(name);
  if (!metavar.empty()) s.append(" ").append(metavar);
  return s;
}

// "worker processes (1..1024; default: number of CPUs)"
std::string key_doc(const Key& key) {
  std::string notes;
  if (key.type == Type::kInt) {
    notes = key.max == INT64_MAX ? ">= " + std::to_string(key.min)
                                 : std::to_string(key.min) + ".." + std::to_string(key.max);
  }
  if (std::string d = default_text(key); !d.empty()) {
    notes.append(notes.empty() ? "" : "; ").append("default: ").append(d);
  }
  std::string doc(key.doc);
  if (!notes.empty()) doc.append(" (").append(notes).append(")");
  return doc;
}

}  // namespace

std::string usage_text() {
  std::string out = R"(usage: aiowsgi-master [options]

  aiowsgi-master -c server.toml                run from a config file
  aiowsgi-master --http 127.0.0.1:9090 --wsgi-file app.py [--cores 10] [--workers 2]
  aiowsgi-master --check -c server.toml        validate the config; exit 0, or 1 with errors
  aiowsgi-master --ini uwsgi.ini               run a uWSGI ini file as it is
  aiowsgi-master --ini uwsgi.ini --print-toml  print it as server.toml (the migration)

Options:
)";
  for (const Option& o : options()) line(&out, flag_text(o.short_name, o.name, o.metavar), o.doc);
  out.append(R"(
Settings, by server.toml table (see aiowsgi.toml(5)). A flag overrides the file's value;
relative paths given as flags are relative to the current directory, relative paths in the
file to the file's folder. Options take their value as "--opt value" or "--opt=value".
Any other option of uWSGI's that an --ini file may hold works as a flag too, the same way:
"--master --processes 4 --chmod-socket 660 --logto /tmp/app.log" (see aiowsgi.toml(5),
MIGRATING FROM UWSGI: some are mapped, some have no effect and log a note, some are refused).
)");
  for (std::string_view table : tables()) {
    out.append("\n[").append(table).append("]\n");
    for (const Key& key : keys()) {
      if (key.table != table) continue;
      std::string mv = metavar(key);
      // As written in the file: an array [ADDR, ...], a table {NAME = VALUE}.
      std::string value = mv;
      if (size_t eq = mv.find('='); is_table(key) && eq != std::string::npos) {
        value = std::string("{").append(mv, 0, eq) + " = " + mv.substr(eq + 1) + "}";
      } else if (is_array(key)) {
        value = "[" + mv + ", ...]";
      }
      line(&out, "  " + std::string(key.name) + " = " + value, key_doc(key));
      const Flag& f = key.flag;
      if (f.name.empty()) continue;
      std::string how = f.adds                           ? "repeatable; adds to the file's"
                        : key.type == Type::kAddressList ? "repeatable; replaces the file's"
                                                         : "";
      // A boolean flag is a switch; its value may follow.
      line(&out, flag_text(f.short_name, f.name, key.type == Type::kBool ? "[" + mv + "]" : mv),
           how);
      for (std::string_view uwsgi : {f.uwsgi, f.uwsgi_also}) {
        if (uwsgi.empty()) continue;
        line(&out, flag_text(0, uwsgi, mv), "same as " + std::string(f.name) + " (uWSGI spelling)");
      }
    }
  }
  return out;
}

std::string key_list() {
  std::string out;
  for (const Key& key : keys()) {
    out.append("[").append(key.table).append("] ").append(key.name).append("\n");
  }
  return out;
}

}  // namespace aiowsgi::config
