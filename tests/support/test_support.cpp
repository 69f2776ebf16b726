#include "support/test_support.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "cpipc/ipc/name.hpp"
#include "cpipc/util/child_process.hpp"

namespace cpipc::test {

std::string cpipc_binary() { return CPIPC_BINARY; }
std::string segment_peer_binary() { return CPIPC_SEGMENT_PEER; }

std::string name_prefix() { return "t" + std::to_string(::getpid()) + "-"; }

std::string unique_name(std::string_view tag) {
  static std::atomic<unsigned> counter{0};
  std::string test = "env";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = std::string(info->test_suite_name()) + "." + info->name();
  }
  for (char& c : test) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';  // parameterized tests have '/' in their names
  }
  if (test.size() > 80) test.resize(80);
  return name_prefix() + test + "-" + std::to_string(counter++) + std::string(tag);
}

bool shm_exists(std::string_view name) {
  struct stat st {};
  return ::stat(ipc::shm_file_path(name).c_str(), &st) == 0;
}

std::vector<std::string> leftover_segments() {
  std::vector<std::string> left;
  const std::string prefix = ipc::shm_prefix() + name_prefix();
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return left;
  while (const dirent* ent = ::readdir(dir)) {
    const std::string_view file = ent->d_name;
    if (file.starts_with(prefix)) left.emplace_back(file.substr(ipc::shm_prefix().size()));
  }
  ::closedir(dir);
  return left;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/cpipc-test-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> CommandResult::err_lines() const {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

CommandResult run_cpipc(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                        const std::string& shell) {
  // The shell only sends stderr to a file and execs cpipc: same pid, same status.
  const TempDir dir;
  const std::string err_file = dir.file("stderr");
  const std::string script = (shell.empty() ? "" : shell + " && ") + "err=$1; shift; exec \"$@\" 2>\"$err\"";
  std::vector<std::string> argv = {"/bin/sh", "-c", script, "sh", err_file, cpipc_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  util::ChildProcess child(argv);
  CommandResult result;
  result.out = child.read_all(timeout);
  const auto status = child.wait(std::chrono::seconds(5));
  if (!status) {
    ADD_FAILURE() << "cpipc did not finish within " << timeout.count() << " ms";
    return result;
  }
  result.status = *status;
  std::ifstream err(err_file);
  result.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return result;
}

std::uint64_t torch_address_space_kib() {
  static const std::uint64_t kib = [] {
    const TempDir dir;
    util::ChildProcess serve(
        {cpipc_binary(), "serve", "--device", "cpu", "--name", unique_name("vm"), "--socket", dir.file("vm.sock")});
    const auto line = serve.read_line(std::chrono::seconds(60));
    std::uint64_t vm_kib = 0;
    std::ifstream status("/proc/" + std::to_string(serve.pid()) + "/status");
    for (std::string key; status >> key;) {
      if (key == "VmSize:") {
        status >> vm_kib;
        break;
      }
    }
    serve.signal(SIGTERM);
    (void)serve.wait(std::chrono::seconds(10));
    if (!line || vm_kib == 0) ADD_FAILURE() << "could not measure what a started cpipc serve maps";
    return vm_kib + 1600000;
  }();
  return kib;
}

std::map<std::string, std::string> fields(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  for (std::string word; in >> word;) {
    if (const auto eq = word.find('='); eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

std::uint64_t number_field(const std::map<std::string, std::string>& f, const std::string& key) {
  const auto it = f.find(key);
  if (it == f.end()) {
    ADD_FAILURE() << "no field '" << key << "' in the result line";
    return 0;
  }
  return std::strtoull(it->second.c_str(), nullptr, 10);
}

std::vector<std::byte> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

}  // namespace cpipc::test

namespace cpipc::test {

void expect_failure(const CommandResult& r, int status) {
  EXPECT_EQ(r.status, status) << "stderr: " << r.err;
  const auto lines = r.err_lines();
  ASSERT_EQ(lines.size(), 1u) << "stderr was:\n" << r.err;
  EXPECT_TRUE(lines[0].starts_with("cpipc: error: ")) << lines[0];
  EXPECT_TRUE(r.err.ends_with('\n')) << "the line ends with a newline";
}

ScopedEnv::ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
  if (const char* old = std::getenv(name_.c_str())) old_ = old;
  ::setenv(name_.c_str(), value.c_str(), 1);
}

ScopedEnv::~ScopedEnv() {
  if (old_) {
    ::setenv(name_.c_str(), old_->c_str(), 1);
  } else {
    ::unsetenv(name_.c_str());
  }
}

}  // namespace cpipc::test
