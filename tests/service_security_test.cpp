// A client never talks to a producer it cannot trust: the socket must sit
// in a directory only its user can write to, belong to that user, and be
// answered by a process of that user (SO_PEERCRED). Fake producers here
// are real listening sockets, some in processes of another user.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "cpipc/error.hpp"
#include "cpipc/service/client.hpp"
#include "support/test_support.hpp"

namespace cpipc {
namespace {

using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

int listen_at(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind " + path);
  return fd;
}

// Answers one connection with a hello, as a producer would.
void say_hello(int listen_fd) {
  const int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  service::Hello h;
  h.stream = "fake";
  try {
    service::send_message(c, service::to_json(h));
  } catch (...) {
  }
  ::close(c);
}

std::string refusal(const std::string& socket) {
  try {
    (void)service::Client::connect(socket, 5s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ServiceSecurity, AProducerOfOurOwnInAPrivateDirectoryIsTrusted) {
  test::TempDir dir;
  const std::string path = dir.file("own.sock");
  const int fd = listen_at(path);
  ASSERT_EQ(::listen(fd, 4), 0);
  std::thread t([fd] { say_hello(fd); });
  EXPECT_EQ(service::Client::connect(path, 5s).hello().stream, "fake");
  t.join();
  ::close(fd);
}

TEST(ServiceSecurity, ASocketInADirectoryOthersCanWriteIsRefused) {
  test::TempDir dir;
  const std::string open_dir = dir.file("open");
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  const int fd = listen_at(open_dir + "/x.sock");
  ASSERT_EQ(::listen(fd, 4), 0);
  const std::string why = refusal(open_dir + "/x.sock");
  EXPECT_NE(why.find("others can write"), std::string::npos) << why;
  ::close(fd);
}

TEST(ServiceSecurity, ASocketOrAProducerOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "playing another user needs root";
  test::TempDir dir;
  // The socket file is someone else's.
  {
    const std::string path = dir.file("theirs.sock");
    const int fd = listen_at(path);
    ASSERT_EQ(::listen(fd, 4), 0);
    ASSERT_EQ(::chown(path.c_str(), kNobody, kNobody), 0);
    const std::string why = refusal(path);
    EXPECT_NE(why.find("belongs to uid 65534"), std::string::npos) << why;
    ::close(fd);
  }
  // The file is ours but the process answering is another user's: it
  // listened after giving up root, and its credentials say so.
  const std::string path = dir.file("fake.sock");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    const int fd = listen_at(path);
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0 || ::listen(fd, 4) != 0) ::_exit(1);
    (void)!::write(ready[1], "r", 1);
    say_hello(fd);
    ::_exit(0);
  }
  ::close(ready[1]);
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1) << "the fake producer did not start";
  ::close(ready[0]);
  const std::string why = refusal(path);
  EXPECT_NE(why.find("runs as uid 65534"), std::string::npos) << why;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace cpipc
