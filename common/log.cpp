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

#include "common/unique_fd.h"

namespace aiowsgi::log {
namespace {

constexpr const char* kLoggerName = "aiowsgi";

// Writes each formatted line with one write(2). Not spdlog's file sinks: they go through a
// FILE* buffer, which _exit() in a worker discards and which fork() would duplicate, and
// several processes appending to one file need whole-line writes (O_APPEND) to keep lines
// intact. base_sink's mutex makes it safe for worker threads too.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Logs to stderr (not owned).
  FdSink() = default;
  // Logs to |path|, already opened as |fd| (owned).
  FdSink(std::string path, UniqueFd fd) : path_(std::move(path)), file_(std::move(fd)) {}

  bool to_file() const { return file_.get() >= 0; }

  Status reopen() {
    if (!to_file()) return Status::Ok();
    UniqueFd fd;
    Status s = open_log_file(path_, &fd);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(mutex_);
    file_ = std::move(fd);  // closes the old file after the swap, under the lock
    return Status::Ok();
  }

  static Status open_log_file(const std::string& path, UniqueFd* out) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::Io("cannot open log file " + path, errno);
    out->reset(fd);
    return Status::Ok();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    int fd = to_file() ? file_.get() : STDERR_FILENO;
    const char* p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // nowhere left to report a logging failure
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  std::string path_;
  UniqueFd file_;
};

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

bool set_level(std::string_view level) {
  auto lvl = parse_level(level);
  if (!lvl) return false;
  spdlog::default_logger()->set_level(*lvl);
  return true;
}

Status reopen() {
  if (!g_sink) return Status::Ok();
  return g_sink->reopen();
}

void flush() { spdlog::default_logger()->flush(); }

bool logging_to_file() { return g_sink && g_sink->to_file(); }

}  // namespace aiowsgi::log
