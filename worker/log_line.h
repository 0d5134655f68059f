// Log lines a worker formats itself instead of through spdlog (access lines, the app's
// output): the line's start in the server log's layout or as the first JSON members, and the
// escaping of the text they carry. Workers and the preload process; no Python, no GIL; a
// LinePrefix belongs to one thread.
#pragma once

#include <fmt/format.h>
#include <time.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace aiowsgi::worker::log_line {

// A line is built in a stack buffer of this size; longer ones spill to the heap.
using Buf = fmt::basic_memory_buffer<char, 1024>;

void put(Buf* b, std::string_view s);
void put_uint(Buf* b, uint64_t v);
void put_int(Buf* b, int v);
// |v| (< 10^digits) with leading zeros.
void put_padded(Buf* b, unsigned v, int digits);

// Request text (bytes of any value): quotes, backslashes, control and non-ASCII bytes
// escaped (\xNN, or \u00NN in JSON), so a crafted path can neither break the line nor fake
// another one.
void append_escaped(Buf* b, std::string_view s, bool json);

// Text meant to be read as UTF-8 (what an app prints) as the inside of a JSON string: valid
// UTF-8 is kept as it is, quotes, backslashes and control characters are escaped, and each
// byte that is not part of a valid UTF-8 sequence becomes \ufffd, so the line stays valid
// JSON whatever the app wrote.
void append_json_text(Buf* b, std::string_view s);

// The start of every line: local time to the millisecond, pid, process and tag, in the layout
// of the server log ("[2024-05-01 12:00:00.123] [pid] [worker 1] [access] ") or as the first
// JSON members ({"time":"2024-05-01T12:00:00.123+02:00","pid":N,). The date and the rest are
// rebuilt once a second, not formatted per line.
class LinePrefix {
 public:
  LinePrefix(bool json, int pid, std::string_view process, std::string_view tag);

  void append(const timespec& now, Buf* b);

 private:
  void rebuild(time_t sec);

  bool json_;
  time_t second_ = 0;
  std::string date_, zone_, tail_;
};

}  // namespace aiowsgi::worker::log_line
