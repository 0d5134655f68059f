// JoinedHeaders: a request's header fields grouped by name for the WSGI environ, one entry per
// name (ASCII case-insensitive), repeated values joined with ", " (RFC 9110 5.3). Used in
// workers while building the environ; pure C++, no Python, no GIL needed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aiowsgi::worker {

class RequestParser;

class JoinedHeaders {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };

  // Groups |in|: fields() then holds one entry per distinct name, in the order each name
  // first appears, spelled as it first appeared; its value is the values of every field of
  // that name in arrival order, joined with ", ". A name that appears once keeps a view of its
  // own value (no copy). O(n log n) name comparisons and one pass over the value bytes, so a
  // head of thousands of repeats costs about what its size says (a join per repeat would be
  // quadratic). Views stay valid until the next group() call, and as long as |in|'s bytes live.
  void group(std::span<const Field> in);
  // The same over the header fields of a parsed head (valid after kHeadComplete, until the
  // parser is reset).
  void group(const RequestParser& p);

  const std::vector<Field>& fields() const { return out_; }

 private:
  std::vector<Field> in_;            // group(RequestParser) copies the views here first
  std::vector<uint32_t> order_;      // field indexes sorted by (lower-case name, index)
  std::vector<int32_t> first_of_;    // per field index: its group, if it is a group's first
  std::vector<uint64_t> joined_at_;  // per group: offset << 32 | length in joined_, or ~0
  std::string joined_;               // the joined values, back to back
  std::vector<Field> out_;
};

}  // namespace aiowsgi::worker
