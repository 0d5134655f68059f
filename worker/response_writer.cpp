#include "worker/response_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/stats_board.h"
#include "common/unique_fd.h"
#include "worker/connection.h"
#include "worker/core.h"
#include "worker/python/python_module.h"
#include "worker/server.h"
#include "worker/transport.h"

namespace aiowsgi::worker {

namespace {

// Bodies up to this size are copied next to the head and sent with one send().
constexpr size_t kCoalesceBytes = 16384;

// ResponseBuffers no request is using, with the capacity they grew (the worker's only
// thread). As many exist as responses are in progress at once; after a burst (thousands of
// held requests answered together) all but kPoolKeep are freed, and a buffer grown past
// kKeepCapacity by a large response shrinks back before it is kept. kPoolKeep covers the
// responses a busy worker makes at once (200 connections each suspended a while, say), so
// that they reuse warm buffers rather than allocate them per request; before the pool, every
// core kept its own, for as many cores as ever served.
class BufferPool {
 public:
  ResponseBuffers* take() {
    if (free_.empty()) return new ResponseBuffers;
    ResponseBuffers* b = free_.back();
    free_.pop_back();
    return b;
  }
  void give(ResponseBuffers* b) noexcept {
    if (free_.size() >= kPoolKeep) {
      delete b;
      return;
    }
    for (std::string* s : {&b->out, &b->sending}) {
      s->clear();
      if (s->capacity() > kKeepCapacity) s->shrink_to_fit();
    }
    free_.push_back(b);  // reserved: never allocates
  }
  BufferPool() { free_.reserve(kPoolKeep); }

 private:
  static constexpr size_t kPoolKeep = 256;
  static constexpr size_t kKeepCapacity = 2 * kCoalesceBytes;
  std::vector<ResponseBuffers*> free_;
};

BufferPool& pool() {
  // Never destroyed: a core may give its buffers back while the worker exits.
  static auto* p = new BufferPool;
  return *p;
}

}  // namespace

ResponseBuffers& ResponseWriter::buffers() noexcept {
  if (buf_ == nullptr) buf_ = pool().take();
  return *buf_;
}

void ResponseWriter::release_buffers() noexcept {
  if (buf_ == nullptr) return;
  pool().give(buf_);
  buf_ = nullptr;
}

std::string error_response(int status, std::string_view date, std::string_view added) {
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  ResponseHead h;
  h.set_status(status);
  (void)h.add_header("Content-Type", "text/plain");
  HeadOptions o;
  o.keep_alive = false;
  o.known_length = static_cast<int64_t>(body.size());
  o.date = date;
  o.added = added;
  std::string r;
  append_head(h, o, &r);
  r += body;
  return r;
}

bool ResponseWriter::start_response(PyObject* status, PyObject* headers,
                                    PyObject* exc_info) noexcept {
  if (exc_info != Py_None) {
    if (headers_sent_) {
      // PEP 3333: too late to change the response: re-raise the app's exception.
      if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
        return false;
      }
      PyObject* t = PyTuple_GET_ITEM(exc_info, 0);
      PyObject* v = PyTuple_GET_ITEM(exc_info, 1);
      PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
      Py_INCREF(t);
      Py_INCREF(v);
      Py_INCREF(tb);
      PyErr_Restore(t, v, tb);
      return false;
    }
  } else if (headers_set_) {
    PyErr_SetString(PyExc_AssertionError,
                    "start_response() called again without exc_info (PEP 3333)");
    return false;
  }
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "status must be a str such as '200 OK'");
    return false;
  }
  Py_ssize_t slen;
  const char* st = PyUnicode_AsUTF8AndSize(status, &slen);
  if (st == nullptr) return false;
  // Validated and copied now: what the app does to its objects later never reaches the wire.
  // The first call fills the head in place (until it is valid, headers_set() stays false).
  // A second one (with exc_info, before anything was sent) replaces it only once all of it is
  // valid: until then the first call's head stands.
  ResponseBuffers& b = buffers();
  ResponseHead replacement;
  ResponseHead& staged = headers_set_ ? replacement : b.head;
  staged.reset();
  if (HeadError e = staged.set_status(std::string_view(st, static_cast<size_t>(slen)));
      e != HeadError::kOk) {
    PyErr_Format(PyExc_ValueError, "invalid status line %R: %s", status, head_error_text(e));
    return false;
  }
  if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
    PyErr_SetString(PyExc_TypeError, "response_headers must be a list of (name, value) tuples");
    return false;
  }
  // No Python code runs in this loop (only on its error paths, which leave it), so the
  // list cannot change under it.
  Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyRef item = PyRef::borrow(PySequence_Fast_GET_ITEM(headers, i));
    if (!PyTuple_Check(item.get()) || PyTuple_GET_SIZE(item.get()) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item.get(), 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item.get(), 1))) {
      PyErr_Format(PyExc_TypeError, "response header %R is not a (str, str) tuple", item.get());
      return false;
    }
    PyObject* name_obj = PyTuple_GET_ITEM(item.get(), 0);
    PyObject* value_obj = PyTuple_GET_ITEM(item.get(), 1);
    Py_ssize_t nl, vl;
    const char* name = PyUnicode_AsUTF8AndSize(name_obj, &nl);
    const char* value = PyUnicode_AsUTF8AndSize(value_obj, &vl);
    if (name == nullptr || value == nullptr) return false;
    HeadError e = staged.add_header(std::string_view(name, static_cast<size_t>(nl)),
                                    std::string_view(value, static_cast<size_t>(vl)));
    switch (e) {
      case HeadError::kOk:
        continue;
      case HeadError::kHeaderName:
        PyErr_Format(PyExc_ValueError, "invalid response header name %R", name_obj);
        break;
      case HeadError::kHeaderValue:
        // Never sent: a CR or LF here would let the app (or its input) split the response.
        PyErr_Format(PyExc_ValueError, "response header %R has a CR, LF or NUL in its value",
                     name_obj);
        break;
      case HeadError::kContentLength:
      case HeadError::kDuplicateContentLength:
        PyErr_Format(PyExc_ValueError, "invalid Content-Length %R: %s", value_obj,
                     head_error_text(e));
        break;
      default:
        PyErr_SetString(PyExc_ValueError, head_error_text(e));
        break;
    }
    return false;
  }
  if (&staged == &replacement) b.head = std::move(replacement);
  const ResponseHead& head = b.head;
  status_code_ = head.status_code();
  no_body_status_ = head.no_body_status();
  has_content_length_ = head.has_content_length();
  content_length_ = head.content_length();
  if (head.wants_close()) keep_alive_ = false;
  headers_set_ = true;
  return true;
}

// --- Response ---------------------------------------------------------------------------------

// Assembles the response head into buffers().out (not sent yet) from the copy start_response made.
// |known_length|: the whole body's length when the server knows it (a list response, a
// file), or -1.
bool ResponseWriter::build_head(int64_t known_length) noexcept {
  Connection* conn = core_->connection();
  Server* server = core_->server();
  ResponseBuffers& b = buffers();
  b.out.clear();
  HeadOptions o;
  // uwsgi peers get close-delimited bodies, never chunked framing.
  o.http11 = !conn->uwsgi && conn->parser.http_minor() >= 1;
  o.head_request = head_request_;
  // A draining worker (reload, stop, recycling) tells keep-alive clients to reconnect: their
  // next request then goes to a worker that is staying. So does one whose max_requests
  // cannot cover another request on this connection.
  o.keep_alive = keep_alive_ && server->keep_alive_allowed(conn);
  o.known_length = known_length;
  o.date = server->date_header();
  o.added = server->added_headers();
  HeadPlan plan = append_head(b.head, o, &b.out);
  chunked_ = plan.framing == Framing::kChunked;
  if (plan.framing == Framing::kContentLength) {
    has_content_length_ = true;
    content_length_ = plan.content_length;
  }
  keep_alive_ = plan.keep_alive;
  headers_sent_ = true;
  return true;
}

bool ResponseWriter::write_body(const char* data, size_t len) noexcept {
  bool head_pending = !headers_sent_;
  if (head_pending) build_head(-1);
  bool send_body = !head_request_ && !no_body_status_ && len > 0;
  if (send_body && has_content_length_) {
    uint64_t room = content_length_ - std::min(content_length_, body_sent_);
    if (len > room) {
      if (room == 0 || body_sent_ + len > content_length_)
        spdlog::warn("app sent more than its Content-Length ({} bytes); truncated",
                     content_length_);
      len = static_cast<size_t>(room);
      keep_alive_ = false;
      send_body = len > 0;
    }
  }
  if (!send_body) {
    if (!head_pending) return true;
    iovec iov{buf_->out.data(), buf_->out.size()};
    return send_all(&iov, 1);
  }
  body_sent_ += len;
  std::string* out = &buffers().out;
  if (!head_pending) out->clear();
  if (chunked_) append_chunk_size(out, len);
  if (len <= kCoalesceBytes) {
    out->append(data, len);
    if (chunked_) out->append("\r\n");
    iovec iov{out->data(), out->size()};
    return send_all(&iov, 1);
  }
  static char crlf[] = "\r\n";
  iovec iov[3] = {{out->data(), out->size()}, {const_cast<char*>(data), len}, {crlf, 2}};
  return send_all(iov, chunked_ ? 3 : 2);
}

IoResult ResponseWriter::finish_body() noexcept {
  if (!headers_sent_) {
    // Nothing was written: an empty body of known length (for HEAD, none: see
    // respond_from_result).
    build_head(no_body_status_ || head_request_ ? -1 : 0);
    iovec iov{buf_->out.data(), buf_->out.size()};
    if (!send_all(&iov, 1)) return IoResult::kClose;
  }
  if (chunked_) {
    static char last[] = "0\r\n\r\n";
    iovec iov{last, 5};
    if (!send_all(&iov, 1)) return IoResult::kClose;
  }
  if (has_content_length_ && body_sent_ < content_length_ && !head_request_ && !no_body_status_) {
    spdlog::warn("app sent {} bytes of its declared Content-Length {}; closing the connection",
                 body_sent_, content_length_);
    keep_alive_ = false;
    return IoResult::kClose;
  }
  return IoResult::kOk;
}

IoResult ResponseWriter::respond_from_result(PyObject* result) noexcept {
  // Fast path: a list or tuple of bytes with start_response already called. The length is
  // known, so the response gets a Content-Length and goes out in one send when small.
  if ((PyList_CheckExact(result) || PyTuple_CheckExact(result)) && headers_set_ && !headers_sent_) {
    PyObject* seq = result;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    size_t total = 0;
    bool all_bytes = true;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
      if (!PyBytes_Check(item)) {
        all_bytes = false;
        break;
      }
      total += static_cast<size_t>(PyBytes_GET_SIZE(item));
    }
    if (all_bytes && n <= 64) {
      // An empty body for HEAD says nothing of GET's: Werkzeug, CherryPy and Bottle return
      // [] for HEAD and stream GET's (chunked). RFC 9110 9.3.2: HEAD's head is GET's, so
      // no length is invented; the app's own Content-Length, if any, is kept.
      build_head(head_request_ && total == 0 ? -1 : static_cast<int64_t>(total));
      bool send_body = !head_request_ && !no_body_status_;
      if (has_content_length_ && total > content_length_) {
        spdlog::warn("app sent more than its Content-Length ({} bytes); truncated",
                     content_length_);
        keep_alive_ = false;
      }
      uint64_t room = has_content_length_ ? content_length_ : total;
      if (!send_body) room = 0;
      if (total <= kCoalesceBytes) {
        for (Py_ssize_t i = 0; i < n && room > 0; ++i) {
          PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
          size_t len = std::min<uint64_t>(static_cast<size_t>(PyBytes_GET_SIZE(item)), room);
          buf_->out.append(PyBytes_AS_STRING(item), len);
          room -= len;
          body_sent_ += len;
        }
        if (!hold_or_send()) return IoResult::kClose;
      } else {
        iovec iov[65];
        // send_all may suspend this core, and the app (a loop callback) may then empty its
        // list: the items stay referenced here for as long as their bytes are in flight.
        PyRef held[64];
        int cnt = 0;
        iov[cnt++] = {buf_->out.data(), buf_->out.size()};
        for (Py_ssize_t i = 0; i < n && room > 0; ++i) {
          PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
          held[i] = PyRef::borrow(item);
          size_t len = std::min<uint64_t>(static_cast<size_t>(PyBytes_GET_SIZE(item)), room);
          iov[cnt++] = {PyBytes_AS_STRING(item), len};
          room -= len;
          body_sent_ += len;
        }
        if (!send_all(iov, cnt)) return IoResult::kClose;
      }
      return finish_body();
    }
  }
  // wsgi.file_wrapper around a real file: sendfile.
  if (is_file_wrapper(result) && headers_set_ && !headers_sent_) {
    int fd = -1;
    PyRef filelike = PyRef::steal(PyObject_GetAttrString(result, "filelike"));
    if (filelike) {
      PyRef fileno = PyRef::steal(PyObject_CallMethod(filelike.get(), "fileno", nullptr));
      if (fileno) fd = static_cast<int>(PyLong_AsLong(fileno.get()));
    }
    PyErr_Clear();
    // Our own descriptor for the file: the app may close its file object from a loop callback
    // while this core is suspended in sendfile(), and the number could then be reused for
    // another request's socket or file.
    UniqueFd own(fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1);
    fd = own.get();
    struct stat st;
    off_t offset = fd >= 0 ? lseek(fd, 0, SEEK_CUR) : -1;
    if (fd >= 0 && offset >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      uint64_t count = st.st_size > offset ? static_cast<uint64_t>(st.st_size - offset) : 0;
      if (has_content_length_) count = std::min(count, content_length_);
      build_head(static_cast<int64_t>(count));
      iovec iov{buf_->out.data(), buf_->out.size()};
      if (!send_all(&iov, 1)) return IoResult::kClose;
      if (!head_request_ && !no_body_status_) {
        if (!send_file(fd, offset, count)) return IoResult::kClose;
        body_sent_ += count;
      }
      return finish_body();
    }
  }
  return iterate_result(result);
}

IoResult ResponseWriter::iterate_result(PyObject* result) noexcept {
  PyRef it = PyRef::steal(PyObject_GetIter(result));
  if (!it) {
    core_->log_app_exception("iterating the response");
    if (!headers_sent_) send_simple_error(500);
    return IoResult::kClose;
  }
  for (;;) {
    PyRef item = PyRef::steal(PyIter_Next(it.get()));
    if (!item) break;
    if (!headers_set_) {
      PyErr_SetString(PyExc_AssertionError,
                      "the response iterable yielded before start_response() was called");
      break;
    }
    if (!PyBytes_Check(item.get())) {
      PyErr_Format(PyExc_TypeError, "the response iterable yielded %.200s, not bytes",
                   Py_TYPE(item.get())->tp_name);
      break;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(item.get());
    if (len == 0) continue;  // PEP 3333: an empty item must not send the head early
    if (!write_body(PyBytes_AS_STRING(item.get()), static_cast<size_t>(len))) {
      keep_alive_ = false;
      if (PyErr_Occurred()) PyErr_Clear();
      return IoResult::kClose;  // the client went away: stop iterating (close() still runs)
    }
  }
  if (PyErr_Occurred()) {
    if (core_->cancelling()) return IoResult::kPythonError;
    if (core_->killed()) {
      PyErr_Clear();
      return IoResult::kClose;
    }
    core_->log_app_exception("iterating the response");
    keep_alive_ = false;
    if (!headers_sent_) send_simple_error(error_status_ != 0 ? error_status_ : 500);
    return IoResult::kClose;  // after the head: the connection closes, the client sees a cut
                              // response
  }
  if (!headers_set_) {
    spdlog::error("application returned without calling start_response()");
    send_simple_error(500);
    return IoResult::kClose;
  }
  return finish_body();
}

bool ResponseWriter::send_simple_error(int status) noexcept {
  keep_alive_ = false;
  status_code_ = status;  // for the access log and the status-class counters
  std::string r =
      error_response(status, core_->server()->date_header(), core_->server()->added_headers());
  headers_sent_ = true;
  iovec iov{r.data(), r.size()};
  return send_all(&iov, 1);
}

bool ResponseWriter::hold_or_send() noexcept {
  Connection* conn = core_->connection();
  // Held only while the answer is complete and the connection stays open: the next request's
  // bytes are here, so its response (or the loop, if it suspends) takes this one along.
  if (keep_alive_ && !conn->uwsgi && conn->buffered() > 0 &&
      conn->held_out.size() + buf_->out.size() <= kMaxHeldBytes) {
    conn->held_out.append(buf_->out);
    core_->server()->note_held(conn);
    return true;
  }
  iovec iov{buf_->out.data(), buf_->out.size()};
  return send_all(&iov, 1);
}

bool ResponseWriter::send_all(iovec* iov, int iovcnt) noexcept {
  Connection* conn = core_->connection();
  // Held responses leave first. Taken from the connection while in flight: the loop's flush
  // (Server::on_flush_held) must not send them again while this core waits for room.
  // Without them nothing here needs the writer's buffers: a websocket's sends take none.
  iovec joined[kJoinedIov];
  if (conn->held_out.empty()) return send_iov(conn, iov, iovcnt);
  std::string& sending = buffers().sending;
  sending.swap(conn->held_out);
  conn->held_out.clear();
  if (iovcnt + 1 <= kJoinedIov) {
    joined[0] = {sending.data(), sending.size()};
    std::copy(iov, iov + iovcnt, joined + 1);
    iov = joined;
    ++iovcnt;
  } else {
    iovec first{sending.data(), sending.size()};
    bool ok = send_iov(conn, &first, 1);
    sending.clear();
    if (!ok) return false;
  }
  bool ok = send_iov(conn, iov, iovcnt);
  sending.clear();
  return ok;
}

bool ResponseWriter::send_iov(Connection* conn, iovec* iov, int iovcnt) noexcept {
  while (iovcnt > 0) {
    ssize_t n = transport_send(*conn, iov, iovcnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!core_->wait_io(wait_for_write(*conn, true) ? CoreState::kWaitWrite
                                                        : CoreState::kWaitRead)) {
          keep_alive_ = false;
          conn->peer_closed = true;
          return false;
        }
        continue;
      }
      keep_alive_ = false;
      conn->peer_closed = true;
      score_write_error(core_->server()->context().score, core_->id());
      return false;
    }
    core_->server()->tx_bytes += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

bool ResponseWriter::send_file(int fd, off_t offset, uint64_t count) noexcept {
  while (count > 0) {
    Connection& conn = *core_->connection();
    ssize_t n = transport_sendfile(conn, fd, &offset, std::min<uint64_t>(count, 1 << 20));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!core_->wait_io(wait_for_write(conn, true) ? CoreState::kWaitWrite
                                                       : CoreState::kWaitRead))
          return false;
        continue;
      }
      keep_alive_ = false;
      return false;
    }
    if (n == 0) {  // the file shrank under us: the declared length cannot be met
      keep_alive_ = false;
      return false;
    }
    core_->server()->tx_bytes += static_cast<uint64_t>(n);
    count -= static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace aiowsgi::worker
