// RequestHost: the one view worker/python/ has of the request a core serves (head, body,
// response, raw connection); the engine's Core implements it. python/ keeps its own table of
// hosts by core id, registered by the engine, to find the one running now.
// Workers only; every call is made with the GIL held, on the worker's single thread.
#pragma once

#include <Python.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_networks.h"
#include "worker/protocol/request_parser.h"
#include "worker/protocol/uwsgi_parser.h"

namespace aiowsgi::worker {

// How a read of the request body ended (RequestHost::fill_body). The value says whether a
// Python exception is set, so a caller that does not pass it on to the app knows it must
// clear it.
enum class [[nodiscard]] BodyRead{
    kData,         // decoded bytes are available in body() from body_pos()
    kEnd,          // the body is complete: nothing more will come; no exception is set
    kPythonError,  // the body cannot be read (client error or gone, timeout, cancelled): a
                   // Python OSError or TimeoutError is set and the connection will close
};

class RequestHost {
 public:
  // --- Identity ------------------------------------------------------------------------------
  virtual int id() const = 0;  // the core id
  // Changes when a request starts and when it ends: what the app holds of a request (write,
  // wsgi.input, a websocket session) is valid while its serial is the host's.
  virtual uint64_t serial() const = 0;
  virtual bool in_request() const = 0;
  // True while a connection is lent to the host (a request is being served on it).
  virtual bool has_connection() const = 0;
  // True when the running greenlet is the host's own (not the loop's, not one the app made).
  virtual bool on_own_greenlet() const noexcept = 0;

  // --- The request head and what the environ is built from ---------------------------------
  // Exactly one of the two is non-null while has_connection(): the HTTP head, or the uwsgi
  // packet of a uwsgi-protocol connection.
  virtual const RequestParser* http_head() const = 0;
  virtual const UwsgiParser* uwsgi_head() const = 0;
  virtual PyObject* environ_template() const = 0;  // borrowed: the listener's PEP 3333 constants
  // Borrowed str of the peer's address and port; nullptr with a Python exception set if it
  // could not be made.
  virtual PyObject* remote_addr() = 0;
  virtual PyObject* remote_port() = 0;
  virtual PyObject* id_object() const = 0;  // borrowed int, environ["aiowsgi.core"]
  // The peer may set forwarding headers ([server] forwarded_allow_ips, or a unix socket).
  virtual bool trusted_peer() const = 0;
  // The verified client certificate of an https:// connection with [tls] ca: its subject
  // (RFC 2253) and PEM text, valid during the request; false without one.
  virtual bool client_certificate(std::string_view* subject_dn, std::string_view* pem) = 0;
  virtual const IpNetworks& trusted_proxies() const = 0;
  virtual std::string_view mount() const = 0;  // [app] mount, "" when none
  // The client a trusted proxy named, for the access log.
  virtual void set_forwarded_client(std::string client) = 0;

  // --- The request body (wsgi.input), inside the host's greenlet ---------------------------
  // Makes decoded body bytes available in body() from body_pos(), waiting for the client as
  // needed.
  virtual BodyRead fill_body() noexcept = 0;
  virtual std::string& body() = 0;
  virtual size_t& body_pos() = 0;
  // The body was read whole before the app ran ([limits] buffer_body_bytes): its decoded
  // length, which a chunked request's environ gets as CONTENT_LENGTH; nullopt when the body
  // comes from the socket as it is read (then wsgi.input cannot seek).
  virtual std::optional<uint64_t> buffered_body_length() const = 0;
  // A buffered body only: the offset of the next byte wsgi.input returns, and moving it (past
  // the end is allowed: reads then return nothing).
  virtual uint64_t body_tell() const = 0;
  virtual void body_seek(uint64_t offset) noexcept = 0;

  // --- The response ------------------------------------------------------------------------
  // start_response(status, headers, exc_info): false with a Python exception set.
  virtual bool start_response(PyObject* status, PyObject* headers, PyObject* exc_info) noexcept = 0;
  virtual bool headers_set() const = 0;
  virtual bool headers_sent() const = 0;
  // Body bytes (the head first if not yet sent). False when the client is gone.
  virtual bool write_body(const char* data, size_t len) noexcept = 0;
  virtual PyObject* write_callable() const = 0;  // borrowed: what start_response returns
  // A status to answer with instead of 500 if the app's exception escapes before a head.
  virtual void set_error_status(int status) = 0;

  // --- The raw connection ------------------------------------------------------------------
  virtual bool client_gone() const = 0;  // EOF seen on the connection while serving
  virtual int connection_fd() const = 0;
  // The app takes the connection over (websocket): no HTTP response follows, and the
  // server's own reader on the fd is removed.
  virtual void mark_upgraded() noexcept = 0;
  virtual bool upgraded() const = 0;
  // The server's reader on the connection steps aside (the app adds its own to the loop).
  virtual void release_reader() noexcept = 0;
  // Bytes as they are, suspending only this host while the socket is full. False when the
  // client is gone or the request was cancelled (no Python exception set).
  virtual bool send_raw(const char* data, size_t len) noexcept = 0;
  // Appends what the client sent to *out; with |block|, waits up to |timeout| seconds
  // (<= 0: the default). > 0 bytes appended, 0 none or timeout, -1 closed/cancelled/error.
  virtual ssize_t recv_raw(std::string* out, bool block, double timeout) noexcept = 0;

 protected:
  ~RequestHost() = default;  // never destroyed through this view
};

// python/'s own table of hosts, indexed by core id. The engine registers each core when it is
// made and unregisters it before it goes.
void register_host(int id, RequestHost* host) noexcept;
void unregister_host(int id) noexcept;
// The host with core id |id|, or nullptr.
RequestHost* host_by_id(int id) noexcept;
// The host whose own greenlet is running now and serving a request, or nullptr (import time,
// a loop callback, a greenlet the app made).
RequestHost* current_host() noexcept;

}  // namespace aiowsgi::worker
