// The rules every value of a key goes through, wherever it was written (server.toml or a
// flag): type conversion, ranges, choices, name syntax, path and address resolution. Each
// returns the reason a value is refused; the caller says where the value came from.
// Master only (workers get the checked Config); no Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/expires_rule.h"  // kMaxExpires
#include "common/result.h"
#include "common/status.h"
#include "config/keys.h"

namespace aiowsgi::config {

constexpr int64_t kMinWorkers = 1;
constexpr int64_t kMaxWorkers = 1024;
constexpr int64_t kMaxCores = 100000;
constexpr int64_t kMinHeaderBytes = 1024;
constexpr int64_t kMaxHeaderBytes = int64_t{16} * 1024 * 1024;
// Durations are seconds; the cap keeps later conversions (to ev_tstamp, to integer
// nanoseconds for timers) far from overflow. 10^7 s is about 115 days.
constexpr double kMaxSeconds = 1e7;
// And at least the worker's timer period (config.h), 0 aside.
constexpr double kMinSeconds = kTimerTickSeconds;

// One value of a scalar key, or one element of an array key, before it is checked.
using Value = std::variant<int64_t, double, bool, std::string>;
using Entry = std::pair<std::string, std::string>;  // one NAME = "value" of a table key

// As it would be written in the file: 0, 2.5, true, "text".
std::string render(const Value& v);
// Shortest exact form, fixed notation while short ("10000000", "2.5", "0.000001"), else
// exponent notation ("1e+308", "1e-300"): a far out-of-range value is not echoed with
// hundreds of digits.
std::string format_double(double d);
std::string quote(std::string_view s);  // "text", escaped as a TOML basic string
// |s| with control characters written as TOML escapes (\n, \t, \u001B): a message that echoes
// a path, host or key name from the file stays one line.
std::string one_line(std::string_view s);

// A flag's text as a value of |key|'s type ("4" -> 4 for an integer key).
Result<Value> parse_text(const Key& key, std::string_view text);

// The checks that need only the value (range, choices, Python names), no filesystem: what the
// command line checks as it is parsed.
Status check_value(const Key& key, const Value& v);

// check_value, then the rest: paths and unix: addresses resolved against |base| (the config
// file's folder, or the current directory for flags), addresses parsed, users, groups and
// folders looked up. Returns the value to store. For array keys, |v| is one element.
Result<Value> accept(const Key& key, Value v, const std::filesystem::path& base);
// The same for one entry of a table key ([app] env, [static] map).
Result<Entry> accept_entry(const Key& key, Entry e, const std::filesystem::path& base);

// Stores an accepted value: scalars replace, array elements append, table entries replace the
// entry of the same name or append.
void store(const Key& key, Value v, Config* cfg);
void store_entry(const Key& key, Entry e, Config* cfg);
// Empties an array or table key, before a source that replaces it.
void clear(const Key& key, Config* cfg);

// The elements one written value of an array key stands for: for [server] forwarded_allow_ips,
// a comma-separated list as gunicorn takes it ("127.0.0.1, 10.0.0.0/8"; blanks around the
// commas and empty elements dropped); for other keys, |text| itself.
std::vector<std::string> list_elements(const Key& key, std::string_view text);

// Whether |key| holds an array, or a table, of values.
bool is_array(const Key& key);
bool is_table(const Key& key);

// "pkg.mod" / "pkg.mod:callable": OK or why not. Shared with the cross-field checks.
Status check_module(std::string_view module);

}  // namespace aiowsgi::config
