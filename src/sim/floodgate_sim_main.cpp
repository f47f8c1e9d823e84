// floodgate-sim: runs floodgate's simulators as a standalone program, so a bot
// written in any language can be tested against them.
//
//   floodgate-sim botapi --tokens-file tokens.txt --per-chat 1/s --ca-out ca.pem
//   -> botapi: listening on https://127.0.0.1:41873 (3 tokens)
//
// Each simulator is a subcommand: a name, a one-line summary, and a function
// taking the remaining arguments. Adding one is adding a row to kSubcommands.
#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "floodgate/core/error.hpp"
#include "floodgate/sim/bot_api_server.hpp"

namespace {

using Args = std::span<const std::string_view>;

/// Walks "--flag value" arguments.
class ArgReader {
 public:
  explicit ArgReader(Args args) : args_(args) {}
  bool done() const { return next_ >= args_.size(); }
  std::string_view flag() { return args_[next_++]; }
  std::string_view value(std::string_view flag) {
    if (done()) throw floodgate::Error(fmt::format("{} needs a value", flag));
    return args_[next_++];
  }

 private:
  Args args_;
  std::size_t next_ = 0;
};

// Blocks SIGINT/SIGTERM in this thread and every thread it starts later (call
// it before starting any), so that `wait_for_stop_signal` receives them.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void wait_for_stop_signal(const sigset_t& signals) {
  int received = 0;
  sigwait(&signals, &received);
}

std::vector<floodgate::Secret> read_tokens_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw floodgate::Error(fmt::format("cannot read tokens file {}", path));
  std::vector<floodgate::Secret> tokens;
  for (std::string line; std::getline(in, line);) {
    const auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos || line[begin] == '#') continue;
    const auto end = line.find_last_not_of(" \t\r");
    tokens.emplace_back(line.substr(begin, end - begin + 1));
  }
  return tokens;
}

std::uint16_t parse_port(std::string_view text) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || end != text.data() + text.size() || port > 65535) {
    throw floodgate::Error(fmt::format("invalid port '{}'", text));
  }
  return static_cast<std::uint16_t>(port);
}

std::optional<floodgate::sim::Rate> parse_limit(std::string_view text) {
  if (text == "off") return std::nullopt;
  return floodgate::sim::Rate::parse(text);
}

constexpr std::string_view kBotApiUsage = R"(usage: floodgate-sim botapi [options]
  --port P              listen on 127.0.0.1:P (default: a free port)
  --token T             accept this bot token (repeatable)
  --tokens-file F       accept the tokens in F, one per line (# comments)
  --overall RATE        per-token limit over all chats (default 30/s)
  --per-chat RATE       per-token limit per chat (default 1/s)
  --per-group RATE      per-token limit per group chat (default 20/min)
                        RATE is N/s, N/min, N/h, N/250ms ... or "off"
  --plain               serve plain HTTP instead of HTTPS
  --ca-out FILE         write the CA certificate that clients must trust to FILE
)";

int run_botapi(Args args) {
  floodgate::sim::BotApiServerOptions options;
  std::string ca_out;
  for (ArgReader reader(args); !reader.done();) {
    const auto flag = reader.flag();
    if (flag == "--port") options.port = parse_port(reader.value(flag));
    else if (flag == "--token") options.tokens.emplace_back(std::string(reader.value(flag)));
    else if (flag == "--tokens-file") {
      for (auto& token : read_tokens_file(std::string(reader.value(flag)))) options.tokens.push_back(std::move(token));
    } else if (flag == "--overall") options.limits.overall = parse_limit(reader.value(flag));
    else if (flag == "--per-chat") options.limits.per_chat = parse_limit(reader.value(flag));
    else if (flag == "--per-group") options.limits.per_group = parse_limit(reader.value(flag));
    else if (flag == "--plain") options.tls = false;
    else if (flag == "--ca-out") ca_out = std::string(reader.value(flag));
    else if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kBotApiUsage);
      return 0;
    } else {
      throw floodgate::Error(fmt::format("unknown option {}\n{}", flag, kBotApiUsage));
    }
  }
  if (options.tokens.empty()) throw floodgate::Error("no tokens: pass --token or --tokens-file");
  const auto tokens = options.tokens;

  const auto stop_signals = block_stop_signals();
  floodgate::sim::BotApiServer server(std::move(options));
  server.start();
  if (!ca_out.empty()) {
    std::ofstream(ca_out) << server.ca_pem();
    fmt::print("botapi: CA certificate written to {}\n", ca_out);
  }
  fmt::print("botapi: listening on {} ({} tokens)\n", server.url(), tokens.size());
  std::fflush(stdout);

  wait_for_stop_signal(stop_signals);
  server.stop();
  for (const auto& token : tokens) {
    const auto stats = server.stats(token);
    fmt::print("botapi: {}: {} requests, {} ok, {} answered 429, {} sent during a cooldown\n", token,
               stats.requests, stats.succeeded, stats.rate_limited, stats.sent_during_cooldown);
  }
  return 0;
}

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(Args args);
};

constexpr Subcommand kSubcommands[] = {
    {"botapi", "a Telegram Bot API server with flood control and fault injection", run_botapi},
};

int usage(std::FILE* out) {
  fmt::print(out, "usage: floodgate-sim <simulator> [options]   (<simulator> --help for its options)\n");
  for (const auto& command : kSubcommands) fmt::print(out, "  {:10} {}\n", command.name, command.summary);
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return usage(stderr);
  if (args[0] == "--help" || args[0] == "-h") return usage(stdout);
  for (const auto& command : kSubcommands) {
    if (command.name != args[0]) continue;
    try {
      return command.run(Args(args).subspan(1));
    } catch (const std::exception& e) {
      fmt::print(stderr, "floodgate-sim {}: {}\n", command.name, e.what());
      return 1;
    }
  }
  fmt::print(stderr, "floodgate-sim: unknown simulator '{}'\n", args[0]);
  return usage(stderr);
}
