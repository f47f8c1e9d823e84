// A child process running a test's worker binary, its stdout read line by line.
//
//   floodgate::test::WorkerProcess worker(FLOODGATE_TEST_BOT_WORKER, {"--redis", url, ...});
//   REQUIRE(worker.wait_for_line("ready", 10s));
//   auto result = worker.finish(60s);        // exit status and everything it printed
//
// The destructor kills (SIGKILL) and reaps a worker still running, so a failed
// check never leaves a process behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace floodgate::test {

class WorkerProcess {
 public:
  struct Result {
    int exit_status = -1;  ///< -1: killed (did not end in time)
    std::string output;    ///< all of its stdout
  };

  WorkerProcess(const std::string& binary, const std::vector<std::string>& arguments) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<std::string> args{binary};
    args.insert(args.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    read_fd_ = fds[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot start " + binary);
    }
  }

  ~WorkerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  /// Reads until a line equal to `line` was printed; false on timeout or exit.
  bool wait_for_line(const std::string& line, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::size_t searched = 0;
    while (true) {
      for (auto end = output_.find('\n', searched); end != std::string::npos; end = output_.find('\n', searched)) {
        const bool found = output_.compare(searched, end - searched, line) == 0;
        searched = end + 1;
        if (found) return true;
      }
      if (!read_some(deadline)) return false;
    }
  }

  /// Waits for the worker to exit (killing it after `limit`) and returns what it printed.
  Result finish(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (read_some(deadline)) {
    }
    Result result;
    int status = 0;
    pid_t ended = 0;
    while (pid_ > 0 && (ended = ::waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
      ::usleep(5000);  // stdout closed, the process is still tearing down
    }
    if (pid_ > 0 && ended == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    } else if (ended == pid_ && WIFEXITED(status)) {
      result.exit_status = WEXITSTATUS(status);
    }
    pid_ = -1;
    result.output = output_;
    return result;
  }

 private:
  // Appends what arrives before `deadline`; false at end of file or on timeout.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{read_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
    char buffer[4096];
    const auto n = ::read(read_fd_, buffer, sizeof buffer);
    if (n <= 0) return false;
    output_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string output_;
};

}  // namespace floodgate::test
