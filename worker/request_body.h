// RequestBody: the request body as the core serving it reads it for wsgi.input: decoded bytes
// not yet taken by the app, "100 Continue" when the client waits for it, and the body deadline
// ([limits] body_timeout). One per Core, a member of it, reset per request. Workers only;
// runs with the GIL held, inside the core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "worker/body_buffer.h"
#include "worker/protocol/body_deadline.h"
#include "worker/python/request_host.h"

namespace aiowsgi::worker {

class Core;

class RequestBody {
 public:
  explicit RequestBody(Core* core) : core_(core) {}
  RequestBody(const RequestBody&) = delete;
  RequestBody& operator=(const RequestBody&) = delete;

  void reset() {
    bytes_.clear();
    pos_ = 0;
    offset_ = 0;
    deadline_.reset();
    sent_continue_ = false;
  }

  // Makes decoded body bytes available in bytes() (from pos()), reading the socket and
  // suspending the core as needed, or the connection's BodyBuffer when the body was read
  // whole before the app ran. kPythonError (an OSError / TimeoutError raised) on a client
  // error, a timeout, a cancelled request or a temporary file that cannot be read.
  BodyRead fill() noexcept;
  // The body was read whole before the app ran: its length; else nullopt.
  std::optional<uint64_t> buffered_length() const;
  // A buffered body only: the offset of the next byte the app gets, and moving it.
  uint64_t tell() const { return offset_ - (bytes_.size() - pos_); }
  void seek(uint64_t offset) {
    bytes_.clear();
    pos_ = 0;
    offset_ = offset;
  }
  // After the response: reads and discards what the app left unread so the connection can
  // serve its next request. False when it cannot be reused (too much left, a client error,
  // the client never asked to send it).
  bool finish() noexcept;

  std::string& bytes() { return bytes_; }
  size_t& pos() { return pos_; }

 private:
  Core* core_;
  // From the connection's BodyBuffer, |bytes_| next: where the app's reads are in it.
  BodyRead fill_buffered(const BodyBuffer& buffer) noexcept;

  std::string bytes_;  // decoded request body not yet read by the app, from pos_
  size_t pos_ = 0;
  uint64_t offset_ = 0;    // a buffered body: where in it |bytes_| ends
  BodyDeadline deadline_;  // [limits] body_timeout
  bool sent_continue_ = false;
};

}  // namespace aiowsgi::worker
