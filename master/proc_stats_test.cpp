// Kernel probes against this process and a real loopback listener.
#include "master/proc_stats.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace aiowsgi::master {
namespace {

TEST(ProcStats, MemoryOfThisProcess) {
  ProcessMemory m = read_memory(getpid());
  EXPECT_GT(m.rss, 1024u * 1024);   // a gtest binary uses more than 1 MB
  EXPECT_LT(m.rss, 4096ull << 20);  // and less than 4 GB
  EXPECT_GE(m.vsz, m.rss);
  // Unreadable: zeros, not an error.
  EXPECT_EQ(read_memory(0).rss, 0u);
  EXPECT_EQ(read_memory(-5).rss, 0u);
  EXPECT_EQ(read_memory(-5).vsz, 0u);
}

TEST(ProcStats, ListenQueueOfATcpListener) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 7), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int clients[2];
  for (int& c : clients) {
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ListenQueue q = listen_queue(fd);
  EXPECT_EQ(q.queue, 2u);
  EXPECT_EQ(q.max_queue, 7u);
  for (int c : clients) close(c);
  close(fd);
  // Not a socket at all: zeros.
  EXPECT_EQ(listen_queue(-1).max_queue, 0u);
}

}  // namespace
}  // namespace aiowsgi::master
