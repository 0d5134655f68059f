#include "worker/protocol/static_path.h"

#include <algorithm>
#include <cstdio>

#include "worker/protocol/char_class.h"

namespace aiowsgi::worker::static_path {
namespace {

using char_class::iequals;
using char_class::lower;
using char_class::trim_ows;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits only, at least one; saturates at UINT64_MAX (a huge position is simply past the end).
std::optional<uint64_t> parse_digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  return v;
}

// Calls f(element) for each non-empty, trimmed element of a comma-separated list.
template <typename F>
void for_each_element(std::string_view list, F&& f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int month_index(std::string_view m) {
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i;
  }
  return -1;
}

// Fixed-width decimal field; -1 when not all digits.
int number(std::string_view s) {
  if (s.empty()) return -1;
  int v = 0;
  for (char c : s) {
    if (!is_digit(c)) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// "08:49:37"
bool parse_clock(std::string_view s, tm* out) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  out->tm_hour = number(s.substr(0, 2));
  out->tm_min = number(s.substr(3, 2));
  out->tm_sec = number(s.substr(6, 2));
  return out->tm_hour >= 0 && out->tm_hour < 24 && out->tm_min >= 0 && out->tm_min < 60 &&
         out->tm_sec >= 0 && out->tm_sec <= 60;
}

}  // namespace

std::optional<std::string> relative_path(std::string_view decoded) {
  if (decoded.find('\0') != std::string_view::npos) return std::nullopt;
  std::string out;
  while (!decoded.empty()) {
    size_t slash = decoded.find('/');
    std::string_view seg = decoded.substr(0, slash);
    if (seg == "..") return std::nullopt;
    if (!seg.empty() && seg != ".") {
      if (!out.empty()) out.push_back('/');
      out.append(seg);
    }
    if (slash == std::string_view::npos) break;
    decoded.remove_prefix(slash + 1);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

Range parse_range(std::string_view header, uint64_t size) {
  Range r;
  header = trim_ows(header);
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() || !iequals(header.substr(0, kUnit.size()), kUnit)) return r;
  header.remove_prefix(kUnit.size());
  int count = 0;
  std::string_view spec;
  for_each_element(header, [&](std::string_view item) {
    ++count;
    spec = item;
  });
  // Several ranges would need a multipart/byteranges body; the whole file is a valid answer
  // (RFC 9110 14.2: a server may ignore Range).
  if (count != 1) return r;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return r;
  std::string_view a = trim_ows(spec.substr(0, dash)), b = trim_ows(spec.substr(dash + 1));
  if (a.empty()) {  // "-n": the last n bytes
    auto n = parse_digits(b);
    if (!n) return r;
    if (*n == 0 || size == 0) {
      r.kind = Range::Kind::kUnsatisfiable;
      return r;
    }
    r.kind = Range::Kind::kSingle;
    r.first = size - std::min(*n, size);
    r.last = size - 1;
    return r;
  }
  auto first = parse_digits(a);
  if (!first) return r;
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = parse_digits(b);
    if (!last || *last < *first) return r;  // invalid: ignored, like no Range at all
  }
  if (*first >= size) {
    r.kind = Range::Kind::kUnsatisfiable;
    return r;
  }
  r.kind = Range::Kind::kSingle;
  r.first = *first;
  r.last = last ? std::min(*last, size - 1) : size - 1;
  return r;
}

std::string make_etag(ino_t inode, uint64_t size, int64_t mtime_ns) {
  char buf[80];
  int n =
      snprintf(buf, sizeof buf, "\"%llx-%llx-%llx\"", static_cast<unsigned long long>(inode),
               static_cast<unsigned long long>(size), static_cast<unsigned long long>(mtime_ns));
  return std::string(buf, static_cast<size_t>(n));
}

bool none_match_hits(std::string_view header, std::string_view etag) {
  header = trim_ows(header);
  if (header == "*") return true;
  bool hit = false;
  for_each_element(header, [&](std::string_view tag) {
    if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
    if (tag == etag) hit = true;
  });
  return hit;
}

bool if_range_allows(std::string_view header, std::string_view etag, time_t mtime) {
  header = trim_ows(header);
  if (header.empty()) return true;
  if (header[0] == '"') return header == etag;
  if (header.size() >= 2 && header[0] == 'W' && header[1] == '/') return false;  // weak: never
  auto t = parse_http_date(header);
  return t && *t == mtime;
}

std::optional<time_t> parse_http_date(std::string_view s) {
  s = trim_ows(s);
  tm t{};
  size_t comma = s.find(',');
  if (comma == 3 && s.size() == 29) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s.substr(25) != " GMT")
      return std::nullopt;
    t.tm_mday = number(s.substr(5, 2));
    t.tm_mon = month_index(s.substr(8, 3));
    t.tm_year = number(s.substr(12, 4)) - 1900;
    if (!parse_clock(s.substr(17, 8), &t)) return std::nullopt;
  } else if (comma != std::string_view::npos && comma > 3) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    std::string_view r = s.substr(comma + 1);
    if (r.size() != 23 || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' ||
        r.substr(19) != " GMT")
      return std::nullopt;
    t.tm_mday = number(r.substr(1, 2));
    t.tm_mon = month_index(r.substr(4, 3));
    int yy = number(r.substr(8, 2));
    if (yy < 0) return std::nullopt;
    // Two-digit years (RFC 9110 5.6.7): 70..99 are the 1900s, the rest this century.
    t.tm_year = yy >= 70 ? yy : yy + 100;
    if (!parse_clock(r.substr(11, 8), &t)) return std::nullopt;
  } else if (s.size() == 24) {
    // asctime: "Sun Nov  6 08:49:37 1994"
    if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ') return std::nullopt;
    t.tm_mon = month_index(s.substr(4, 3));
    std::string_view day = s.substr(8, 2);
    t.tm_mday = day[0] == ' ' ? number(day.substr(1)) : number(day);
    if (!parse_clock(s.substr(11, 8), &t)) return std::nullopt;
    t.tm_year = number(s.substr(20, 4)) - 1900;
  } else {
    return std::nullopt;
  }
  if (t.tm_mon < 0 || t.tm_mday < 1 || t.tm_mday > 31 || t.tm_year < 70) return std::nullopt;
  time_t v = timegm(&t);
  if (v == static_cast<time_t>(-1)) return std::nullopt;
  return v;
}

std::string format_http_date(time_t t) {
  tm g{};
  gmtime_r(&t, &g);
  char buf[40];
  int n =
      snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[g.tm_wday % 7],
               g.tm_mday, kMonths[g.tm_mon % 12], g.tm_year + 1900, g.tm_hour, g.tm_min, g.tm_sec);
  return std::string(buf, static_cast<size_t>(n));
}

bool accepts_gzip(std::string_view header) {
  // q of gzip (or x-gzip) and of "*"; -1: not listed.
  int gzip = -1, star = -1;
  for_each_element(header, [&](std::string_view item) {
    size_t semi = item.find(';');
    std::string_view coding = trim_ows(item.substr(0, semi));
    int positive = 1;
    while (semi != std::string_view::npos) {
      item.remove_prefix(semi + 1);
      semi = item.find(';');
      std::string_view param = trim_ows(item.substr(0, semi));
      if (param.size() >= 2 && lower(param[0]) == 'q' && param[1] == '=') {
        // qvalue = "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]: zero iff only zeros.
        std::string_view q = trim_ows(param.substr(2));
        positive = q.find_first_not_of("0.") != std::string_view::npos ? 1 : 0;
      }
    }
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip = std::max(gzip, positive);
    } else if (coding == "*") {
      star = positive;
    }
  });
  if (gzip >= 0) return gzip > 0;
  return star > 0;
}

}  // namespace aiowsgi::worker::static_path
