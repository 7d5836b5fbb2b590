#include "support/processes.hpp"

#include "support/http.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace manifold::test {

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

temp_dir::temp_dir() {
  auto base = std::filesystem::temp_directory_path() / "manifold-test-XXXXXX";
  std::string tmpl = base.string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, const std::string& text) const {
  auto p = file(name);
  std::ofstream out{p, std::ios::binary};
  out << text;
  return p;
}

namespace {

/// The state letter of /proc/PID/stat (`R`, `S`, `T` for stopped, ...); 0 when unreadable.
char process_state(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')'); // The command name may hold spaces and parentheses.
  return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_file) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Own process group, so a stray signal to the test's group does not reach it twice.
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    int out = log_file.empty() ? ::open("/dev/null", O_WRONLY)
                               : ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

} // namespace

child_process::child_process(std::vector<std::string> argv, std::string log_file)
  : log_file_(std::move(log_file)) {
  pid_ = spawn(argv, log_file_);
}

child_process::~child_process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (wait_exit(std::chrono::seconds{5}) < 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
  }
}

bool child_process::running() {
  if (reaped_) return false;
  pid_t r = ::waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

int child_process::stop(int sig) {
  if (reaped_) return status_;
  ::kill(pid_, sig);
  if (wait_exit(std::chrono::seconds{10}) < 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return status_;
}

void child_process::signal(int sig) {
  if (reaped_) return;
  ::kill(pid_, sig);
  // kill() returns before the process stopped: wait until the kernel says it has, so that a
  // test's next request cannot still be answered by it.
  if (sig == SIGSTOP)
    wait_until([&] { return process_state(pid_) == 'T'; }, std::chrono::seconds{5});
}

int child_process::wait_exit(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (!running()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return -1;
}

std::string child_process::log() const {
  std::ifstream in{log_file_};
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds deadline) {
  temp_dir dir;
  auto log = dir.file("out");
  command_result result;
  child_process p{argv, log};
  result.exit_code = p.wait_exit(deadline);
  result.output = p.log();
  return result;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

bool port_open(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

etcd_process::etcd_process() : etcd_process(options{}) {
}

etcd_process::etcd_process(options opts) {
  // The ports were free a moment ago but another process may take one first; etcd then exits
  // at once and another pair is tried.
  std::string failure;
  for (int attempt = 0; attempt < 3; ++attempt) {
    client_port_ = free_port();
    peer_port_ = free_port();
    auto client = endpoint();
    auto peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    auto data = dir_.file("data-" + std::to_string(attempt));
    std::vector<std::string> argv{opts.binary,
                                  "--name", "test",
                                  "--data-dir", data,
                                  "--listen-client-urls", client,
                                  "--advertise-client-urls", client,
                                  "--listen-peer-urls", peer,
                                  "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", "test=" + peer,
                                  "--log-level", "warn"};
    if (opts.short_leases) {
      argv.insert(argv.end(), {"--heartbeat-interval", "10", "--election-timeout", "100"});
    }
    process_ = std::make_unique<child_process>(argv, dir_.file("etcd.log"));

    bool answered = wait_until(
      [&] {
        if (!process_->running()) return true;
        auto res = http_request(client_port_, "POST", "/v3/kv/range", R"({"key":"AA=="})",
                                {{"Content-Type", "application/json"}},
                                std::chrono::milliseconds{500});
        return res.status == 200;
      },
      opts.start_deadline);
    if (answered && process_->running()) return;
    failure = process_->running() ? "no answer within "
                                      + std::to_string(opts.start_deadline.count()) + " ms"
                                  : "exited";
    failure += "; log:\n" + process_->log();
    process_->stop(SIGKILL);
  }
  throw std::runtime_error("etcd did not start (" + opts.binary
                           + " from the Debian package etcd-server): " + failure);
}

etcd_process::~etcd_process() {
  // A paused etcd would sit on the SIGTERM that child_process sends until its kill timeout.
  if (process_ && process_->running()) process_->signal(SIGCONT);
}

std::string etcd_process::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(client_port_);
}

pid_t etcd_process::pid() const {
  return process_->pid();
}

bool etcd_process::running() {
  return process_->running();
}

void etcd_process::signal(int sig) {
  process_->signal(sig);
}

int etcd_process::stop(int sig) {
  return process_->stop(sig);
}

std::string etcd_process::log() const {
  return process_->log();
}

} // namespace manifold::test
