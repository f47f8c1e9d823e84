// A bot process for the UpdatePoller restart test: polls every bot of the
// environment (TELEGRAM_BOT_TOKEN, MULTITOKEN1..) on a simulator and handles
// each update by appending "<token id> <update id> <redelivered>" to a file
// with one write(2) (O_APPEND: a kill leaves the whole line or none).
// Idempotent where the poller says a repeat is possible: an update flagged
// `redelivered` that the file already holds is not written again. The test
// kills this process with SIGKILL at random points; SIGTERM closes it cleanly
// (exit 0 once async_close completed).
//
//   update_poller_child <simulator url> <ca pem file> <offset file> <handled file>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "floodgate/core/env.hpp"
#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/credentials.hpp"
#include "floodgate/telegram/update_poller.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// "<token id> <update id>" of every line of the handled file.
std::set<std::string> handled_keys(const std::string& path) {
  std::set<std::string> keys;
  std::istringstream lines(read_file(path));
  std::string token_id, update_id, flag;
  while (lines >> token_id >> update_id >> flag) keys.insert(token_id + " " + update_id);
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: update_poller_child <url> <ca pem file> <offset file> <handled file>\n");
    return 2;
  }
  const std::string handled_path = argv[4];
  const int out = ::open(handled_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) return 3;

  boost::asio::io_context io;
  floodgate::net::HttpsClient http(io.get_executor(),
                                   {.tls = floodgate::net::make_client_tls_context({.ca_pem = read_file(argv[2])})});
  floodgate::telegram::BotPool bots(io.get_executor(), http,
                                    floodgate::bot_tokens_from(floodgate::Environment::from_process()),
                                    {.endpoint = floodgate::net::Endpoint::parse(argv[1])});
  floodgate::telegram::UpdateOffsetFile offsets(argv[3]);
  floodgate::telegram::UpdatePoller poller(
      bots, {.timeout = std::chrono::seconds(2),
             .limit = 7,  // small batches: kills land between batches and inside them
             .offsets = &offsets,
             .backoff = {.backoff_base = std::chrono::milliseconds(20), .backoff_cap = std::chrono::milliseconds(200)},
             .on_update = [&](const floodgate::telegram::Update& update) {
               const std::string key = fmt::format("{} {}", update.token_id, update.update_id);
               if (update.redelivered && handled_keys(handled_path).contains(key)) return;  // done before the kill
               const std::string line = fmt::format("{} {}\n", key, update.redelivered ? 1 : 0);
               if (::write(out, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
             }});
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code, int) {
    poller.async_close([&](std::error_code) { io.stop(); });
  });
  poller.start();
  io.run();
  ::close(out);
  return 0;
}
