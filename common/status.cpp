#include "common/status.h"

#include <string.h>

namespace aiowsgi {

std::string errno_string(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* s = strerror_r(err, buf, sizeof buf);
  return s;
}

Status Status::Io(const std::string& context, int err) {
  return Status(Code::kIo, context + ": " + errno_string(err));
}

std::string Status::ToString() const {
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kConfig:
      return "config error: " + msg_;
    case Code::kIo:
      return "I/O error: " + msg_;
    case Code::kPython:
      return "Python error: " + msg_;
    case Code::kProtocol:
      return "protocol error: " + msg_;
  }
  return msg_;
}

}  // namespace aiowsgi
