// Byte classes of HTTP (RFC 9110 5.5, 5.6.2; RFC 9112) shared by the protocol parsers and
// writers: one 256-entry table (a hot loop tests a byte with a load and a mask), one ASCII
// case-folding comparison and a word-at-a-time skip over plain bytes. Pure functions; any
// thread, no Python.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aiowsgi::worker::char_class {

inline constexpr uint8_t kRequestLine = 1;  // anything but SP, CTLs and DEL (obs-text allowed)
inline constexpr uint8_t kField = 2;        // field-vchar, SP, HTAB (RFC 9110 5.5)
inline constexpr uint8_t kToken = 4;        // tchar (RFC 9110 5.6.2)
inline constexpr uint8_t kHex = 8;          // HEXDIG
// Any byte but NUL, CR and LF: what a response field value (or status line) may carry
// without splitting the head. Looser than kField on purpose: other CTLs are the app's business.
inline constexpr uint8_t kFieldValue = 16;

inline constexpr std::array<uint8_t, 256> kTable = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    if (c > 0x20 && c != 0x7f) v |= kRequestLine;
    if ((c >= 0x20 && c != 0x7f) || c == '\t') v |= kField;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                       std::string_view::npos)) {
      v |= kToken;
    }
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    if (c != 0 && c != '\r' && c != '\n') v |= kFieldValue;
    t[c] = v;
  }
  return t;
}();

// True when byte |c| is in any of the classes of |cls|.
constexpr bool is(uint8_t cls, char c) {
  return (kTable[static_cast<unsigned char>(c)] & cls) != 0;
}

// True when every byte of |s| is in the one class |cls| (true for an empty |s|). Branch-free
// over the bytes: the short strings it checks (header names and values) are mostly valid.
constexpr bool all_in(uint8_t cls, std::string_view s) {
  uint8_t acc = cls;
  for (char c : s) acc &= kTable[static_cast<unsigned char>(c)];
  return acc != 0;
}

constexpr bool is_token(std::string_view s) { return !s.empty() && all_in(kToken, s); }

// Value of a HEXDIG; only defined for bytes of class kHex.
constexpr int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }

// Case-insensitive ASCII comparison (header names, tokens); other bytes compare exactly.
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Skips bytes of class |cls| from data[i], eight at a time while no byte of a word is below
// |below| or DEL (SWAR, "hasless" from Bit Twiddling Hacks; bytes >= 0x80 never match, so
// obs-text stays on the fast path). Returns the index of the first byte not in |cls|, or n.
inline size_t skip_plain(const char* data, size_t i, size_t n, uint8_t below, uint8_t cls) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = kOnes * 0x80;
  while (n - i >= 8) {
    uint64_t x;
    std::memcpy(&x, data + i, 8);
    const uint64_t del = x ^ (kOnes * 0x7f);
    if ((((x - kOnes * below) & ~x) | ((del - kOnes) & ~del)) & kHigh) break;
    i += 8;
  }
  while (i < n && is(cls, data[i])) ++i;
  return i;
}

// all_in(kFieldValue, s), eight bytes at a time: no byte is NUL, CR or LF ("haszero" from Bit
// Twiddling Hacks, exact as a yes/no answer). Response field values can be long (CSP, cookies).
inline bool is_field_value(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = kOnes * 0x80;
  auto has_zero = [](uint64_t v) { return ((v - kOnes) & ~v & kHigh) != 0; };
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    if (has_zero(x) || has_zero(x ^ (kOnes * '\r')) || has_zero(x ^ (kOnes * '\n'))) return false;
  }
  return all_in(kFieldValue, std::string_view(p, n));
}

constexpr bool is_ows(char c) { return c == ' ' || c == '\t'; }

// |s| without leading and trailing OWS (SP, HTAB).
constexpr std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// The elements of a #list field value (RFC 9110 5.6.1), left to right, each with its OWS (SP
// and HTAB alike) trimmed: "a ,\tb," gives "a", "b", "". n commas give n + 1 elements, empty
// ones included, so each caller decides whether to skip or refuse them. Every token compared
// in a request head (Connection, Transfer-Encoding, Expect, Upgrade) is split here, so a tab
// is whitespace wherever a space is.
class ListElements {
 public:
  explicit constexpr ListElements(std::string_view value) : rest_(value) {}
  // Sets *e to the next element; false once every element has been returned.
  constexpr bool next(std::string_view* e) {
    if (done_) return false;
    const size_t comma = rest_.find(',');
    *e = trim_ows(rest_.substr(0, comma));
    if (comma == std::string_view::npos) {
      done_ = true;
    } else {
      rest_.remove_prefix(comma + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// True when the #list |value| holds |token| (ASCII case-insensitive): "close" is in
// "keep-alive , Close\t".
constexpr bool list_has_token(std::string_view value, std::string_view token) {
  ListElements list(value);
  std::string_view e;
  while (list.next(&e)) {
    if (iequals(e, token)) return true;
  }
  return false;
}

}  // namespace aiowsgi::worker::char_class
