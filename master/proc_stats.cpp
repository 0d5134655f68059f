#include "master/proc_stats.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/unique_fd.h"

namespace aiowsgi::master {

ProcessMemory read_memory(pid_t pid) {
  ProcessMemory m;
  if (pid <= 0) return m;
  std::string path = "/proc/" + std::to_string(pid) + "/statm";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return m;
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return m;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return m;
  static const uint64_t page = [] {
    long p = ::sysconf(_SC_PAGESIZE);
    return static_cast<uint64_t>(p > 0 ? p : 4096);
  }();
  m.vsz = size * page;
  m.rss = resident * page;
  return m;
}

ListenQueue listen_queue(int fd) {
  ListenQueue q;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == 10) {
    // TCP_LISTEN (10): the kernel reports the accept queue here (tcp_get_info).
    q.queue = info.tcpi_unacked;
    q.max_queue = info.tcpi_sacked;
  }
  return q;
}

}  // namespace aiowsgi::master
