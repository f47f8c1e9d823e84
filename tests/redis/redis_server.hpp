// A real redis-server (Debian's) on a free loopback port, for one test.
//
//   floodgate::test::RedisServer redis;                       // plain, no password
//   floodgate::test::RedisServer secured({.user = "app", .password = "pw"});
//   auto url = redis.url();                                   // "redis://127.0.0.1:41234"
//   redis.restart();                                          // same port, empty (no persistence)
//
// The binary is the one CMake found (FLOODGATE_TEST_REDIS_SERVER); when it
// is missing the constructor throws with a message saying to run
// scripts/bootstrap: a test fails, it never hangs. The server runs in a
// fresh temporary folder (its log is there, quoted when it does not start),
// saves nothing, and is stopped (SIGTERM, then SIGKILL) by the destructor.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "floodgate/sim/test_certificates.hpp"

#ifndef FLOODGATE_TEST_REDIS_SERVER
#define FLOODGATE_TEST_REDIS_SERVER ""
#endif

namespace floodgate::test {

struct RedisServerOptions {
  std::string user;      ///< an ACL user with every permission (`default` is switched off)
  std::string password;  ///< with `user`: that user's; alone: requirepass
  bool tls = false;      ///< TLS only (the plain port is off), certificate from TestCertificates
  std::string acl = "~* &* +@all";  ///< the user's ACL rules, space-separated
};

class RedisServer {
 public:
  using Options = RedisServerOptions;

  explicit RedisServer(Options options = {}) : options_(std::move(options)) {
    binary_ = FLOODGATE_TEST_REDIS_SERVER;
    if (binary_.empty() || !std::filesystem::exists(binary_)) {
      throw std::runtime_error("redis-server was not found (FLOODGATE_TEST_REDIS_SERVER=\"" + binary_ +
                               "\"); run scripts/bootstrap to install it");
    }
    char folder[] = "/tmp/floodgate-redis-XXXXXX";
    if (!::mkdtemp(folder)) throw std::runtime_error("cannot create a folder for redis-server");
    dir_ = folder;
    if (options_.tls) {
      certs_ = sim::TestCertificates::generate();
      write_file(dir_ / "server.pem", certs_->server_chain_pem);
      write_file(dir_ / "server.key", certs_->server_key_pem.reveal());
      write_file(dir_ / "ca.pem", certs_->ca_pem);
    }
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = free_port();
      start();
    }
    if (pid_ < 0) throw std::runtime_error("redis-server did not start: " + log_tail());
  }

  ~RedisServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  /// The URL without credentials.
  std::string url() const { return (options_.tls ? "rediss://" : "redis://") + std::string("127.0.0.1:") + std::to_string(port_); }
  /// The URL with these credentials.
  std::string url(const std::string& user, const std::string& password) const {
    return (options_.tls ? "rediss://" : "redis://") + user + ":" + password + "@127.0.0.1:" + std::to_string(port_);
  }
  const std::string& ca_pem() const { return certs_->ca_pem; }
  bool running() const { return pid_ > 0; }

  /// Stops the server (SIGTERM; SIGKILL after 5 s). Its data is gone.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

  /// Starts it again on the same port, empty.
  void restart() {
    stop();
    start();
    if (pid_ < 0) throw std::runtime_error("redis-server did not restart: " + log_tail());
  }

 private:
  static void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
  }

  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot find a free loopback port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  std::vector<std::string> arguments() const {
    std::vector<std::string> args = {binary_, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                     "--dir", dir_.string(), "--logfile", (dir_ / "redis.log").string(),
                                     "--daemonize", "no", "--protected-mode", "no"};
    const std::string port = std::to_string(port_);
    if (options_.tls) {
      args.insert(args.end(), {"--port", "0", "--tls-port", port, "--tls-cert-file", (dir_ / "server.pem").string(),
                               "--tls-key-file", (dir_ / "server.key").string(), "--tls-ca-cert-file",
                               (dir_ / "ca.pem").string(), "--tls-auth-clients", "no"});
    } else {
      args.insert(args.end(), {"--port", port});
    }
    if (!options_.user.empty()) {
      args.insert(args.end(), {"--user", options_.user, "on", ">" + options_.password});
      std::istringstream rules(options_.acl);
      for (std::string rule; rules >> rule;) args.push_back(rule);
      args.insert(args.end(), {"--user", "default", "off"});
    } else if (!options_.password.empty()) {
      args.insert(args.end(), {"--requirepass", options_.password});
    }
    return args;
  }

  void start() {
    const auto args = arguments();
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return;
    if (pid == 0) {
      // A test that dies (a sanitizer's abort) takes its server along: an
      // orphaned server would hold ctest's output pipe open until the timeout.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before the line above
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    // Ready when it accepts a connection; a server that exits (port taken) is not.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      if (accepts()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
  }

  bool accepts() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (fd >= 0) ::close(fd);
    return ok;
  }

  std::string log_tail() const {
    std::ifstream in(dir_ / "redis.log");
    std::stringstream text;
    text << in.rdbuf();
    const std::string all = text.str();
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
  }

  Options options_;
  std::string binary_;
  std::filesystem::path dir_;
  std::optional<sim::TestCertificates> certs_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace floodgate::test
