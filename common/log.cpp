#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "common/fd_sink.h"
#include "common/unique_fd.h"

namespace aiowsgi::log {
namespace {

constexpr const char* kLoggerName = "aiowsgi";

std::shared_ptr<FdSink> g_sink;

std::optional<spdlog::level::level_enum> parse_level(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn" || level == "warning") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "critical") return spdlog::level::critical;
  if (level == "off") return spdlog::level::off;
  return std::nullopt;
}

// %P is the pid: %t would show the master's thread id in a forked child (NOTES.md).
std::string make_pattern(std::string_view process_name) {
  std::string escaped;
  for (char c : process_name) {
    if (c == '%') escaped += '%';
    escaped += c;
  }
  return "[%Y-%m-%d %H:%M:%S.%e] [%P] [" + escaped + "] [%l] %v";
}

void install(std::shared_ptr<FdSink> sink, spdlog::level::level_enum level,
             std::string_view process_name) {
  auto logger = std::make_shared<spdlog::logger>(kLoggerName, sink);
  logger->set_level(level);
  logger->set_pattern(make_pattern(process_name));
  spdlog::set_default_logger(logger);
  g_sink = std::move(sink);
}

}  // namespace

Status setup(std::string_view level, const std::string& file, std::string_view process_name) {
  auto lvl = parse_level(level);
  if (!lvl) return Status::Config("unknown log level '" + std::string(level) + "'");
  std::shared_ptr<FdSink> sink;
  if (file.empty()) {
    sink = std::make_shared<FdSink>();
  } else {
    UniqueFd fd;
    Status s = FdSink::open_log_file(file, &fd);
    if (!s.ok()) return s;
    sink = std::make_shared<FdSink>(file, std::move(fd));
  }
  install(std::move(sink), *lvl, process_name);
  return Status::Ok();
}

void setup_stderr(std::string_view process_name) {
  install(std::make_shared<FdSink>(), spdlog::level::info, process_name);
}

void set_process_name(std::string_view process_name) {
  spdlog::default_logger()->set_pattern(make_pattern(process_name));
}

Status set_level(std::string_view level) {
  auto lvl = parse_level(level);
  if (!lvl) return Status::Config("unknown log level '" + std::string(level) + "'");
  spdlog::default_logger()->set_level(*lvl);
  return Status::Ok();
}

Status reopen() {
  if (!g_sink) return Status::Ok();
  return g_sink->reopen();
}

Status chown_file(uid_t uid, gid_t gid) {
  if (!g_sink) return Status::Ok();
  return g_sink->chown_file(uid, gid);
}

void flush() { spdlog::default_logger()->flush(); }

Status keep_standard_streams_apart() {
  if (FdSink::standard_fd(STDERR_FILENO) != STDERR_FILENO) return Status::Ok();
  UniqueFd out(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
  UniqueFd err(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3));
  if (out.get() < 0 || err.get() < 0)
    return Status::Io("cannot copy standard output and error", errno);
  // Kept open for the process's lifetime.
  FdSink::set_standard_fd(STDOUT_FILENO, out.release());
  FdSink::set_standard_fd(STDERR_FILENO, err.release());
  return Status::Ok();
}

int stderr_fd() { return FdSink::standard_fd(STDERR_FILENO); }

void write_raw(std::string_view lines) {
  if (g_sink) {
    g_sink->write_raw(lines);
    return;
  }
  while (!lines.empty()) {
    ssize_t n = ::write(stderr_fd(), lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    lines.remove_prefix(static_cast<size_t>(n));
  }
}

bool logging_to_file() { return g_sink && g_sink->to_file(); }

}  // namespace aiowsgi::log
