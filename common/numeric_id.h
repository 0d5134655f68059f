// Numeric user and group ids as written in server.user / server.group: a string of digits is
// an id, anything else a name. Shared by the config loader (which reports a bad id as
// file:line:col) and the master's privilege drop. Master only; no Python.
#pragma once

#include <cstdint>
#include <string_view>

namespace aiowsgi {

// The largest id accepted: (uid_t)-1 = 4294967295 means "unchanged" to setresuid() and
// chown(), so it can never name an identity to run as.
inline constexpr uint32_t kMaxNumericId = 4294967294u;

enum class IdText {
  kName,        // not all digits: look it up as a name
  kNumber,      // all digits and in 0..kMaxNumericId: *out holds it
  kOutOfRange,  // all digits but larger than kMaxNumericId (it would wrap, e.g. to root)
};

// Classifies |text|; the empty string is a name (callers treat "" as "not set").
inline IdText parse_numeric_id(std::string_view text, uint32_t* out) {
  if (text.empty()) return IdText::kName;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return IdText::kName;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    // Stop accumulating once past the limit: a thousand digits must not wrap around.
    if (v > kMaxNumericId) v = uint64_t{kMaxNumericId} + 1;
  }
  if (v > kMaxNumericId) return IdText::kOutOfRange;
  *out = static_cast<uint32_t>(v);
  return IdText::kNumber;
}

}  // namespace aiowsgi
