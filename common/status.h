// Status: the result of an operation that can fail, in the LevelDB style.
// Used by every process (master and workers); no Python, no GIL needed.
// An OK status carries no message; errors carry a code and a human-readable message.
#pragma once

#include <string>
#include <utility>

namespace aiowsgi {

class [[nodiscard]] Status {
 public:
  enum class Code { kOk, kConfig, kIo, kPython, kProtocol };

  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status Config(std::string msg) { return Status(Code::kConfig, std::move(msg)); }
  static Status Python(std::string msg) { return Status(Code::kPython, std::move(msg)); }
  static Status Protocol(std::string msg) { return Status(Code::kProtocol, std::move(msg)); }
  // An I/O failure: "context: strerror(err)". Thread-safe (uses strerror_r).
  static Status Io(const std::string& context, int err);

  bool ok() const noexcept { return code_ == Code::kOk; }
  Code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return msg_; }
  std::string ToString() const;

 private:
  Status(Code c, std::string m) : code_(c), msg_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string msg_;
};

// Thread-safe strerror.
std::string errno_string(int err);

}  // namespace aiowsgi
