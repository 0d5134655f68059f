#include "worker/app_output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"
#include "worker/line_batch.h"

namespace aiowsgi::worker::app_output {

namespace {

// Lines read at once are written together, in chunks of whole lines of at most PIPE_BUF
// bytes: the log may be a pipe shared with other processes (journald, a container runtime).
constexpr size_t kBatchBytes = 64 * 1024;
// Output without a newline is logged in pieces of this size rather than held forever.
constexpr size_t kMaxLine = 16 * 1024;
// On stop, at most this much more is read: an app thread that never stops writing must not
// keep the process from exiting.
constexpr size_t kMaxFinalDrain = 16 * 1024 * 1024;

struct State {
  UniqueFd read[2];                // the read ends of the stdout and stderr pipes (non-blocking)
  UniqueFd wake_read, wake_write;  // one byte asks the thread to finish
  std::thread thread;
  bool json = false;
  int worker_id = 0;
  std::string process;
};

// Never destroyed: static destructors run after _exit's siblings may still use it.
State& state() {
  static State* s = new State;
  return *s;
}

// The reader: the pipes' bytes, cut into lines, formatted and written out. Its own thread.
class Reader {
 public:
  explicit Reader(State* s)
      : s_(s),
        prefixes_{log_line::LinePrefix(s->json, getpid(), s->process, "stdout"),
                  log_line::LinePrefix(s->json, getpid(), s->process, "stderr")},
        batch_(kBatchBytes, PIPE_BUF, [](const char* p, size_t n) {
          log::write_raw(std::string_view(p, n));
          return true;
        }) {}

  void run() noexcept {
    try {
      loop();
    } catch (...) {
      // Out of memory, at worst: the app's output then stays in the pipes.
    }
  }

 private:
  void loop() {
    for (;;) {
      pollfd p[3] = {{s_->read[0].get(), POLLIN, 0},
                     {s_->read[1].get(), POLLIN, 0},
                     {s_->wake_read.get(), POLLIN, 0}};
      if (::poll(p, 3, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[2].revents != 0) {
        // Finishing: everything written before stop() was called is in the pipes now.
        size_t budget = kMaxFinalDrain;
        for (int i = 0; i < 2; ++i) {
          while (budget > 0 && read_some(i, &budget)) {
          }
          if (!partial_[i].empty()) emit(i, partial_[i]);
          partial_[i].clear();
        }
        batch_.flush();
        char byte;
        while (::read(s_->wake_read.get(), &byte, 1) > 0) {
        }
        return;
      }
      size_t budget = sizeof buf_;
      for (int i = 0; i < 2; ++i) {
        if (p[i].revents != 0) read_some(i, &budget);
      }
      batch_.flush();
    }
  }

  // One read from stream |i|; false at the end of what there is to read now.
  bool read_some(int i, size_t* budget) {
    ssize_t n = ::read(s_->read[i].get(), buf_, std::min(sizeof buf_, *budget));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    *budget -= static_cast<size_t>(n);
    consume(i, std::string_view(buf_, static_cast<size_t>(n)));
    return true;
  }

  void consume(int i, std::string_view data) {
    clock_gettime(CLOCK_REALTIME, &now_);
    std::string& part = partial_[i];
    for (;;) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) break;
      if (part.empty()) {
        emit(i, data.substr(0, nl));
      } else {
        part.append(data.data(), nl);
        emit(i, part);
        part.clear();
      }
      data.remove_prefix(nl + 1);
    }
    part.append(data.data(), data.size());
    while (part.size() >= kMaxLine) {
      emit(i, std::string_view(part).substr(0, kMaxLine));
      part.erase(0, kMaxLine);
    }
  }

  void emit(int i, std::string_view text) {
    line_.clear();
    format_line(&prefixes_[i], s_->json, s_->worker_id, i == 0 ? Stream::kStdout : Stream::kStderr,
                text, now_, &line_);
    batch_.append(std::string_view(line_.data(), line_.size()));
  }

  State* s_;
  log_line::LinePrefix prefixes_[2];
  LineBatch batch_;
  std::string partial_[2];
  log_line::Buf line_;
  timespec now_{};
  char buf_[64 * 1024];
};

// The thread, with every signal blocked in it: the process's signals (TERM, QUIT, USR1, the
// app's own) belong to the loop's thread.
Status start_thread(State* s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return Status::Io("app output: pipe", errno);
  s->wake_read.reset(fds[0]);
  s->wake_write.reset(fds[1]);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    s->thread = std::thread([s] {
      auto reader = std::make_unique<Reader>(s);
      reader->run();
    });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return Status::Io("app output: cannot start its thread", EAGAIN);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return Status::Ok();
}

}  // namespace

Status start(bool json, std::string_view process, int worker_id) {
  State& s = state();
  stop();
  if (Status st = log::keep_standard_streams_apart(); !st.ok()) return st;
  // The pipes a preload process's child inherited are its parent's: it makes its own.
  UniqueFd read_end[2], write_end[2];
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Status::Io("app output: pipe", errno);
    read_end[i].reset(fds[0]);
    write_end[i].reset(fds[1]);
    // Only the read end is non-blocking: the flag belongs to the open pipe, and the app's
    // writes (and its subprocesses') must block, not fail, while the reader catches up.
    if (::fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) return Status::Io("app output: fcntl", errno);
  }
  // dup2 leaves fds 1 and 2 without close-on-exec: the app's subprocesses inherit them.
  for (int i = 0; i < 2; ++i) {
    if (::dup2(write_end[i].get(), i + 1) < 0) return Status::Io("app output: dup2", errno);
  }
  for (int i = 0; i < 2; ++i) s.read[i] = std::move(read_end[i]);
  s.json = json;
  s.worker_id = worker_id;
  s.process = std::string(process);
  return start_thread(&s);
}

void stop() noexcept {
  State& s = state();
  if (!s.thread.joinable()) return;
  char byte = 1;
  ssize_t n;
  do {
    n = ::write(s.wake_write.get(), &byte, 1);
  } while (n < 0 && errno == EINTR);
  s.thread.join();
  s.wake_read.reset();
  s.wake_write.reset();
}

void resume() noexcept {
  State& s = state();
  if (s.thread.joinable() || s.read[0].get() < 0) return;
  (void)start_thread(&s);
}

void flush() noexcept {
  State& s = state();
  if (!s.thread.joinable()) return;
  stop();
  resume();
}

void format_line(log_line::LinePrefix* prefix, bool json, int worker_id, Stream stream,
                 std::string_view text, const timespec& now, log_line::Buf* out) {
  prefix->append(now, out);
  if (!json) {
    log_line::put(out, text);
    log_line::put(out, "\n");
    return;
  }
  log_line::put(out, "\"worker\":");
  log_line::put_int(out, worker_id);
  log_line::put(out, stream == Stream::kStdout ? ",\"stream\":\"stdout\",\"message\":\""
                                               : ",\"stream\":\"stderr\",\"message\":\"");
  log_line::append_json_text(out, text);
  log_line::put(out, "\"}\n");
}

}  // namespace aiowsgi::worker::app_output
