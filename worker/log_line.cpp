#include "worker/log_line.h"

#include <charconv>

namespace aiowsgi::worker::log_line {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
// past U+10FFFF) that starts |s| at |i|, or 0 when the byte there does not start one.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

void put(Buf* b, std::string_view s) { b->append(s.data(), s.data() + s.size()); }

void put_uint(Buf* b, uint64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  b->append(tmp, r.ptr);
}

void put_int(Buf* b, int v) {  // signed: a core-less request logs core=-1
  char tmp[16];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  b->append(tmp, r.ptr);
}

void put_padded(Buf* b, unsigned v, int digits) {
  char tmp[8];
  for (int i = digits; i-- > 0; v /= 10) tmp[i] = static_cast<char>('0' + v % 10);
  b->append(tmp, tmp + digits);
}

void append_escaped(Buf* b, std::string_view s, bool json) {
  size_t plain = 0;  // bytes of |s| already known to need no escape, not yet appended
  for (size_t i = 0; i < s.size(); ++i) {
    auto ch = static_cast<unsigned char>(s[i]);
    bool quote = ch == '"' || ch == '\\';
    if (!quote && ch >= 0x20 && ch < 0x7f) continue;
    b->append(s.data() + plain, s.data() + i);
    plain = i + 1;
    if (quote) {
      char esc[2] = {'\\', static_cast<char>(ch)};
      b->append(esc, esc + 2);
    } else if (json) {
      char esc[6] = {'\\', 'u', '0', '0', kHex[ch >> 4], kHex[ch & 15]};
      b->append(esc, esc + 6);
    } else {
      char esc[4] = {'\\', 'x', kHex[ch >> 4], kHex[ch & 15]};
      b->append(esc, esc + 4);
    }
  }
  b->append(s.data() + plain, s.data() + s.size());
}

void append_json_text(Buf* b, std::string_view s) {
  size_t plain = 0;
  size_t i = 0;
  while (i < s.size()) {
    auto ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
      ++i;
      continue;
    }
    if (ch >= 0x80) {
      if (size_t n = utf8_sequence(s, i); n > 0) {
        i += n;
        continue;
      }
    }
    b->append(s.data() + plain, s.data() + i);
    if (ch == '"' || ch == '\\') {
      char esc[2] = {'\\', static_cast<char>(ch)};
      b->append(esc, esc + 2);
    } else if (ch < 0x20 || ch == 0x7f) {
      char esc[6] = {'\\', 'u', '0', '0', kHex[ch >> 4], kHex[ch & 15]};
      b->append(esc, esc + 6);
    } else {
      put(b, "\\ufffd");  // not UTF-8: JSON cannot carry the byte itself
    }
    plain = ++i;
  }
  b->append(s.data() + plain, s.data() + s.size());
}

LinePrefix::LinePrefix(bool json, int pid, std::string_view process, std::string_view tag)
    : json_(json) {
  if (json_) {
    tail_ = "\",\"pid\":" + std::to_string(pid) + ",";
  } else {
    tail_ = "] [" + std::to_string(pid) + "] [" + std::string(process) + "] [" + std::string(tag) +
            "] ";
  }
}

void LinePrefix::append(const timespec& now, Buf* b) {
  if (now.tv_sec != second_ || date_.empty()) rebuild(now.tv_sec);
  put(b, date_);
  put_padded(b, static_cast<unsigned>(now.tv_nsec / 1000000), 3);
  put(b, zone_);
  put(b, tail_);
}

void LinePrefix::rebuild(time_t sec) {
  second_ = sec;
  tm t{};
  localtime_r(&sec, &t);
  char buf[64];
  size_t n = strftime(buf, sizeof buf,
                      json_ ? "{\"time\":\"%Y-%m-%dT%H:%M:%S." : "[%Y-%m-%d %H:%M:%S.", &t);
  date_.assign(buf, n);
  zone_.clear();
  if (json_) {
    long off = t.tm_gmtoff / 60;
    char z[8] = {off < 0 ? '-' : '+'};
    off = off < 0 ? -off : off;
    z[1] = static_cast<char>('0' + off / 600 % 10);
    z[2] = static_cast<char>('0' + off / 60 % 10);
    z[3] = ':';
    z[4] = static_cast<char>('0' + off % 60 / 10);
    z[5] = static_cast<char>('0' + off % 10);
    zone_.assign(z, 6);
  }
}

}  // namespace aiowsgi::worker::log_line
