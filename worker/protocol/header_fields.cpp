// JoinedHeaders: see header_fields.h. Sorting field indexes by name puts each name's fields
// next to each other (in arrival order, the index breaking ties) without a hash table or a
// per-name allocation; a second pass emits the groups in first-appearance order.

#include "worker/protocol/header_fields.h"

#include <algorithm>

#include "worker/protocol/char_class.h"
#include "worker/protocol/request_parser.h"

namespace aiowsgi::worker {
namespace {

using char_class::lower;

// <0, 0, >0 like memcmp, on ASCII-lower-cased bytes.
int icompare(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const char x = lower(a[i]), y = lower(b[i]);
    if (x != y) return static_cast<unsigned char>(x) < static_cast<unsigned char>(y) ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

constexpr uint64_t kNotJoined = ~uint64_t{0};

}  // namespace

void JoinedHeaders::group(const RequestParser& p) {
  in_.clear();
  for (size_t i = 0; i < p.header_count(); ++i)
    in_.push_back({p.header_name(i), p.header_value(i)});
  group(std::span<const Field>(in_));
}

void JoinedHeaders::group(std::span<const Field> in) {
  out_.clear();
  const size_t n = in.size();
  if (n <= 1) {  // the common small cases skip the sort
    if (n == 1) out_.push_back(in[0]);
    return;
  }
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = static_cast<uint32_t>(i);
  std::sort(order_.begin(), order_.end(), [&in](uint32_t a, uint32_t b) {
    const int c = icompare(in[a].name, in[b].name);
    return c != 0 ? c < 0 : a < b;
  });

  first_of_.assign(n, -1);
  joined_at_.clear();
  joined_.clear();
  for (size_t s = 0; s < n;) {
    size_t e = s + 1;
    while (e < n && icompare(in[order_[s]].name, in[order_[e]].name) == 0) ++e;
    first_of_[order_[s]] = static_cast<int32_t>(joined_at_.size());
    if (e - s == 1) {
      joined_at_.push_back(kNotJoined);
    } else {
      const size_t off = joined_.size();
      for (size_t k = s; k < e; ++k) {
        if (k != s) joined_ += ", ";
        joined_ += in[order_[k]].value;
      }
      joined_at_.push_back(static_cast<uint64_t>(off) << 32 | (joined_.size() - off));
    }
    s = e;
  }

  // joined_ is complete: views into it are stable from here on.
  for (size_t i = 0; i < n; ++i) {
    if (first_of_[i] < 0) continue;
    const uint64_t at = joined_at_[static_cast<size_t>(first_of_[i])];
    if (at == kNotJoined) {
      out_.push_back(in[i]);
    } else {
      out_.push_back({in[i].name, std::string_view(joined_).substr(at >> 32, at & 0xffffffffu)});
    }
  }
}

}  // namespace aiowsgi::worker
