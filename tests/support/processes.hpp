#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

/// Helpers for tests that run real peers (mosquitto, pymodbus, etcd) and the manifold binary.
namespace manifold::test {

/// A port that was free on 127.0.0.1 a moment ago (bound with port 0, then released).
std::uint16_t free_port();

/// A fresh directory under the system temp dir, removed by the destructor.
class temp_dir {
public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes `text` to `name` inside the directory and returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

private:
  std::string path_;
};

/// A child process started by the test and ended by its pid (never by name).
class child_process {
public:
  /// Starts `argv`; stdout and stderr go to `log_file` (or are discarded when empty).
  child_process(std::vector<std::string> argv, std::string log_file = {});
  ~child_process(); ///< SIGTERM, then SIGKILL after 5 s.

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  /// Sends `sig` to the child (SIGTERM by default) and waits for it; returns the exit status as
  /// `waitpid` reports it.
  int stop(int sig = 15);
  /// Sends `sig` and returns at once (SIGSTOP / SIGCONT to pause and resume the child).
  void signal(int sig);
  /// Waits for the child to exit by itself within `deadline`; returns its exit code, or -1.
  int wait_exit(std::chrono::milliseconds deadline);
  std::string log() const;

private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::string log_file_;
};

/// Runs a command to completion (bounded by `deadline`), capturing stdout+stderr.
struct command_result {
  int exit_code = -1; ///< -1 if it timed out or could not start.
  std::string output;
};
command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds deadline = std::chrono::seconds{30});

/// Polls `condition` every 10 ms until it holds or `deadline` passes.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds{10});

/// True once something accepts TCP connections on 127.0.0.1:port.
bool port_open(std::uint16_t port);

/// A single-member etcd (Debian `etcd-server`) on free loopback client and peer ports with its
/// data in a fresh temp dir. The constructor returns once etcd answers a v3 JSON request and
/// throws std::runtime_error (with etcd's log) when it does not within `start_deadline`.
/// Stopped by pid in the destructor.
class etcd_process {
public:
  struct options {
    std::string binary = "etcd";
    /// etcd raises every lease TTL to 1.5 election timeouts; with its default 1 s election
    /// timeout a 1 s lease lives 2 s. Short elections (10 ms heartbeat, 100 ms election) keep
    /// 1 s leases at 1 s, as tests of expiry want.
    bool short_leases = true;
    std::chrono::milliseconds start_deadline{20000};
  };

  etcd_process();
  explicit etcd_process(options opts);
  ~etcd_process();

  /// `http://127.0.0.1:PORT`, as `etcd_config::endpoints` takes it.
  std::string endpoint() const;
  std::uint16_t client_port() const { return client_port_; }
  std::uint16_t peer_port() const { return peer_port_; }
  pid_t pid() const;
  bool running();
  /// Sends `sig` without waiting (SIGSTOP / SIGCONT pause and resume etcd).
  void signal(int sig);
  /// Ends etcd with `sig` and waits for it, as `child_process::stop` does.
  int stop(int sig = 15);
  std::string log() const;

private:
  temp_dir dir_;
  std::uint16_t client_port_ = 0;
  std::uint16_t peer_port_ = 0;
  std::unique_ptr<child_process> process_;
};

} // namespace manifold::test
