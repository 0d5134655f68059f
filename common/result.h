// Result<T>: a value or the Status saying why there is none, in the style of Status
// (common/status.h). Used by every process; no Python, no GIL needed.
// A failed Result never holds a value; an OK Status is not a valid error.
#pragma once

#include <cassert>
#include <optional>
#include <utility>

#include "common/status.h"

namespace aiowsgi {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit, like a return value
  Result(Status error) : status_(std::move(error)) { assert(!status_.ok()); }  // NOLINT
  // Named forms of the two constructors, where the type is not obvious from context.
  static Result ok(T value) { return Result(std::move(value)); }
  static Result error(Status status) { return Result(std::move(status)); }

  bool ok() const noexcept { return value_.has_value(); }
  const Status& status() const noexcept { return status_; }

  // Only when ok().
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;  // OK when value_ is set
};

}  // namespace aiowsgi
