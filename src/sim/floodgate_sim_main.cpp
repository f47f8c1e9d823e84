// floodgate-sim: runs floodgate's simulators as a standalone program, so a bot
// written in any language can be tested against them.
//
//   floodgate-sim botapi --tokens-file tokens.txt --per-chat 1/s --ca-out ca.pem
//   -> botapi: listening on https://127.0.0.1:41873 (3 tokens)
//   floodgate-sim botapi --scenario world.json --plain --port-out port.txt
//   floodgate-sim kite --keys-file keys.txt --rate 5
//   -> kite: listening on ws://127.0.0.1:40211 (2 API keys)
//   floodgate-sim http --key sk-1 --key sk-2 --limit 5/s --retry-after date --headers openai
//   -> http: listening on https://127.0.0.1:39411 (2 keys)
//
// Each simulator is a subcommand: a name, a one-line summary, and a function
// taking the remaining arguments. Adding one is adding a row to kSubcommands.
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "floodgate/core/error.hpp"
#include "floodgate/sim/test_certificates.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/sim/http_api_server.hpp"
#include "floodgate/sim/kite_ticker_server.hpp"
#include "floodgate/version.hpp"

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

// The lines of a file, trimmed, without blank lines and # comments.
std::vector<std::string> read_lines(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) throw floodgate::Error(fmt::format("cannot read {} file {}", what, path));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    const auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos || line[begin] == '#') continue;
    const auto end = line.find_last_not_of(" \t\r");
    lines.push_back(line.substr(begin, end - begin + 1));
  }
  return lines;
}

// Writes `text` to `path` whole: a temporary file, then a rename, so a reader
// never sees half of it. Throws, naming the path and the reason, when it cannot.
void write_file(const std::string& path, std::string_view text) {
  const auto temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw floodgate::Error(fmt::format("cannot write {}: {}", path, std::generic_category().message(errno)));
    out << text;
    out.close();
    if (!out) {
      std::remove(temporary.c_str());
      throw floodgate::Error(fmt::format("cannot write {}", path));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    throw floodgate::Error(fmt::format("cannot write {}: {}", path, std::generic_category().message(error)));
  }
}

std::vector<floodgate::Secret> read_tokens_file(const std::string& path) {
  std::vector<floodgate::Secret> tokens;
  for (auto& line : read_lines(path, "tokens")) tokens.emplace_back(std::move(line));
  return tokens;
}

// "api_key access_token" per line.
std::vector<floodgate::sim::KiteApiKey> read_keys_file(const std::string& path) {
  std::vector<floodgate::sim::KiteApiKey> keys;
  int number = 0;
  for (const auto& line : read_lines(path, "keys")) {
    ++number;
    const auto space = line.find_first_of(" \t");
    const auto token_begin = space == std::string::npos ? space : line.find_first_not_of(" \t", space);
    if (token_begin == std::string::npos) {
      throw floodgate::Error(fmt::format("{}: entry {} is not \"api_key access_token\"", path, number));
    }
    keys.push_back({line.substr(0, space), floodgate::Secret(line.substr(token_begin))});
  }
  return keys;
}

std::uint16_t parse_port(std::string_view text) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || end != text.data() + text.size() || port > 65535) {
    throw floodgate::Error(fmt::format("invalid port '{}'", text));
  }
  return static_cast<std::uint16_t>(port);
}

int parse_count(std::string_view text) {
  int count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc{} || end != text.data() + text.size() || count < 1) {
    throw floodgate::Error(fmt::format("invalid count '{}'", text));
  }
  return count;
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
  --per-chat-burst N    messages a quiet chat takes at once (default 3)
  --per-group RATE      per-token limit per group chat (default 20/min)
                        RATE is N/s, N/min, N/h, N/250ms ... or "off"
  --scenario FILE       bots, users, groups, updates and faults from a JSON
                        scenario (docs/bot-api-simulator.md); applied after
                        the flags, so its "limits" win
  --closed-world        chats the scenario does not declare are "chat not found"
                        (default: every undeclared user has started every bot)
  --plain               serve plain HTTP instead of HTTPS
  --ca-out FILE         write the CA certificate that clients must trust to FILE
  --port-out FILE       write the port to FILE once listening (for scripts)
)";

nlohmann::json read_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw floodgate::Error(fmt::format("cannot read scenario file {}", path));
  auto scenario = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (scenario.is_discarded()) throw floodgate::Error(fmt::format("{}: not valid JSON", path));
  return scenario;
}

int run_botapi(Args args) {
  floodgate::sim::BotApiServerOptions options;
  std::string ca_out;
  std::string port_out;
  nlohmann::json scenario;
  for (ArgReader reader(args); !reader.done();) {
    const auto flag = reader.flag();
    if (flag == "--port") options.port = parse_port(reader.value(flag));
    else if (flag == "--token") options.tokens.emplace_back(std::string(reader.value(flag)));
    else if (flag == "--tokens-file") {
      for (auto& token : read_tokens_file(std::string(reader.value(flag)))) options.tokens.push_back(std::move(token));
    } else if (flag == "--overall") options.limits.overall = parse_limit(reader.value(flag));
    else if (flag == "--per-chat") options.limits.per_chat = parse_limit(reader.value(flag));
    else if (flag == "--per-group") options.limits.per_group = parse_limit(reader.value(flag));
    else if (flag == "--per-chat-burst") options.limits.per_chat_burst = parse_count(reader.value(flag));
    else if (flag == "--scenario") scenario = read_scenario(std::string(reader.value(flag)));
    else if (flag == "--closed-world") options.open_world = false;
    else if (flag == "--plain") options.tls = false;
    else if (flag == "--ca-out") ca_out = std::string(reader.value(flag));
    else if (flag == "--port-out") port_out = std::string(reader.value(flag));
    else if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kBotApiUsage);
      return 0;
    } else {
      throw floodgate::Error(fmt::format("unknown option {}\n{}", flag, kBotApiUsage));
    }
  }
  auto tokens = options.tokens;
  if (scenario.is_object() && scenario.contains("bots") && scenario["bots"].is_array()) {
    for (const auto& bot : scenario["bots"]) {
      if (bot.is_object() && bot.contains("token") && bot["token"].is_string()) {
        tokens.emplace_back(bot["token"].get<std::string>());
      }
    }
  }
  if (tokens.empty()) throw floodgate::Error("no tokens: pass --token, --tokens-file or a scenario with \"bots\"");

  const auto stop_signals = block_stop_signals();
  floodgate::sim::BotApiServer server(std::move(options));
  if (!scenario.is_null()) server.apply_scenario(scenario);
  server.start();
  if (!ca_out.empty()) {
    write_file(ca_out, server.ca_pem());
    fmt::print("botapi: CA certificate written to {}\n", ca_out);
  }
  if (!port_out.empty()) write_file(port_out, fmt::format("{}\n", server.port()));  // last: "ready"
  fmt::print("botapi: listening on {} ({} tokens)\n", server.url(), tokens.size());
  std::fflush(stdout);

  wait_for_stop_signal(stop_signals);
  server.stop();
  for (const auto& token : tokens) {
    const auto stats = server.stats(token);
    fmt::print("botapi: {}: {} requests, {} ok, {} answered 429, {} sent during a cooldown, {} answered 403\n",
               token, stats.requests, stats.succeeded, stats.rate_limited, stats.sent_during_cooldown,
               stats.forbidden);
  }
  return 0;
}

constexpr std::string_view kKiteUsage = R"(usage: floodgate-sim kite [options]
  --port P            listen on 127.0.0.1:P (default: any free port)
  --keys-file F       one "api_key access_token" per line (# comments allowed)
  --key K --token T   one API key (repeatable; with or without --keys-file)
  --rate N            tick frames per second on each connection (default 10)
  --tls --ca-out F    serve wss:// with a generated certificate; write its CA to F
)";

int run_kite(Args args) {
  floodgate::sim::KiteTickerServerOptions options;
  std::string ca_out;
  bool tls = false;
  for (ArgReader reader(args); !reader.done();) {
    const auto flag = reader.flag();
    if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kKiteUsage);
      return 0;
    } else if (flag == "--port") {
      options.port = parse_port(reader.value(flag));
    } else if (flag == "--keys-file") {
      for (auto& key : read_keys_file(std::string(reader.value(flag)))) options.keys.push_back(std::move(key));
    } else if (flag == "--key") {
      std::string key(reader.value(flag));
      if (reader.done() || reader.flag() != "--token") throw floodgate::Error("--key must be followed by --token");
      options.keys.push_back({std::move(key), floodgate::Secret(std::string(reader.value("--token")))});
    } else if (flag == "--rate") {
      const auto text = reader.value(flag);
      double rate = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rate);
      if (ec != std::errc{} || end != text.data() + text.size() || rate <= 0) {
        throw floodgate::Error(fmt::format("invalid rate '{}'", text));
      }
      options.ticks_per_second = rate;
    } else if (flag == "--tls") {
      tls = true;
    } else if (flag == "--ca-out") {
      ca_out = std::string(reader.value(flag));
    } else {
      throw floodgate::Error(fmt::format("unknown option '{}'\n{}", flag, kKiteUsage));
    }
  }
  if (options.keys.empty()) throw floodgate::Error("no API keys: give --keys-file or --key/--token");
  if (!ca_out.empty() && !tls) throw floodgate::Error("--ca-out needs --tls (plain ws:// has no certificate)");
  std::string ca_pem;
  if (tls) {
    const auto certificates = floodgate::sim::TestCertificates::generate();
    options.tls = floodgate::net::make_server_tls_context(certificates.server_chain_pem, certificates.server_key_pem);
    ca_pem = certificates.ca_pem;
  }
  const auto key_count = options.keys.size();

  const auto stop_signals = block_stop_signals();
  floodgate::sim::KiteTickerServer server(std::move(options));
  server.start();
  if (!ca_out.empty()) {
    write_file(ca_out, ca_pem);
    fmt::print("kite: CA certificate written to {}\n", ca_out);
  }
  fmt::print("kite: listening on {} ({} API keys)\n", server.url(), key_count);
  std::fflush(stdout);

  wait_for_stop_signal(stop_signals);
  server.stop();
  const auto stats = server.stats();
  fmt::print("kite: {} tick frames, {} ticks, {} heartbeats sent\n", stats.frames_sent, stats.ticks_sent,
             stats.heartbeats_sent);
  return 0;
}

constexpr std::string_view kHttpUsage = R"(usage: floodgate-sim http [options]
  --port P              listen on 127.0.0.1:P (default: a free port)
  --key K               accept this API key (repeatable)
  --keys-file F         accept the keys in F, one per line (# comments)
  --limit RATE          requests per key in a fixed window (default 10/s; "off")
  --quota N             successful calls per key before its quota is spent
  --quota-status S      answer a spent quota with 429 (default) or 402
  --retry-after FORM    seconds (default), date or none
  --headers FAMILY      rate-limit headers: none (default), openai, github, anthropic
  --random-429 P        answer this share of requests 429 at random (0..1)
  --seed N              seed of the random 429s
  --plain               serve plain HTTP instead of HTTPS
  --ca-out FILE         write the CA certificate that clients must trust to FILE
  --port-out FILE       write the port to FILE once listening (for scripts)
Serves POST /v1/transcribe and GET /v1/ping (docs/http-api-keys.md).
)";

int run_http(Args args) {
  floodgate::sim::HttpApiServerOptions options;
  std::string ca_out;
  std::string port_out;
  for (ArgReader reader(args); !reader.done();) {
    const auto flag = reader.flag();
    if (flag == "--port") options.port = parse_port(reader.value(flag));
    else if (flag == "--key") options.keys.emplace_back(std::string(reader.value(flag)));
    else if (flag == "--keys-file") {
      for (auto& key : read_tokens_file(std::string(reader.value(flag)))) options.keys.push_back(std::move(key));
    } else if (flag == "--limit") options.limit = parse_limit(reader.value(flag));
    else if (flag == "--quota") options.quota = static_cast<std::uint64_t>(parse_count(reader.value(flag)));
    else if (flag == "--quota-status") {
      const auto status = reader.value(flag);
      if (status != "429" && status != "402") throw floodgate::Error("--quota-status is 429 or 402");
      options.quota_status = status == "402" ? 402 : 429;
    } else if (flag == "--retry-after") {
      const auto form = reader.value(flag);
      if (form == "seconds") options.retry_after = floodgate::sim::RetryAfterForm::seconds;
      else if (form == "date") options.retry_after = floodgate::sim::RetryAfterForm::http_date;
      else if (form == "none") options.retry_after = floodgate::sim::RetryAfterForm::none;
      else throw floodgate::Error(fmt::format("--retry-after: seconds, date or none, not '{}'", form));
    } else if (flag == "--headers") {
      const auto family = reader.value(flag);
      if (family == "none") options.headers = floodgate::sim::RateLimitHeaders::none;
      else if (family == "openai") options.headers = floodgate::sim::RateLimitHeaders::openai;
      else if (family == "github") options.headers = floodgate::sim::RateLimitHeaders::github;
      else if (family == "anthropic") options.headers = floodgate::sim::RateLimitHeaders::anthropic;
      else throw floodgate::Error(fmt::format("--headers: none, openai, github or anthropic, not '{}'", family));
    } else if (flag == "--random-429") {
      const std::string text(reader.value(flag));
      char* end = nullptr;
      const double share = std::strtod(text.c_str(), &end);
      if (end != text.c_str() + text.size() || !(share >= 0 && share <= 1)) {
        throw floodgate::Error(fmt::format("--random-429: a share between 0 and 1, not '{}'", text));
      }
      options.rate_limit_probability = share;
    } else if (flag == "--seed") options.seed = static_cast<std::uint64_t>(parse_count(reader.value(flag)));
    else if (flag == "--plain") options.tls = false;
    else if (flag == "--ca-out") ca_out = std::string(reader.value(flag));
    else if (flag == "--port-out") port_out = std::string(reader.value(flag));
    else if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kHttpUsage);
      return 0;
    } else {
      throw floodgate::Error(fmt::format("unknown option {}\n{}", flag, kHttpUsage));
    }
  }
  if (options.keys.empty()) throw floodgate::Error("no keys: pass --key or --keys-file");
  const auto keys = options.keys;

  const auto stop_signals = block_stop_signals();
  floodgate::sim::HttpApiServer server(std::move(options));
  server.start();
  if (!ca_out.empty()) {
    write_file(ca_out, server.ca_pem());
    fmt::print("http: CA certificate written to {}\n", ca_out);
  }
  if (!port_out.empty()) write_file(port_out, fmt::format("{}\n", server.port()));  // last: "ready"
  fmt::print("http: listening on {} ({} keys)\n", server.url(), keys.size());
  std::fflush(stdout);

  wait_for_stop_signal(stop_signals);
  server.stop();
  for (const auto& key : keys) {
    const auto stats = server.stats(key);
    fmt::print("http: {}: {} requests, {} ok, {} answered 429, {} quota refusals, {} sent during a cooldown\n", key,
               stats.requests, stats.succeeded, stats.rate_limited, stats.quota_refused, stats.sent_during_cooldown);
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
    {"kite", "a Kite ticker WebSocket server streaming binary ticks", run_kite},
    {"http", "a rate-limited JSON API with API keys, quotas and fault injection", run_http},
};

int usage(std::FILE* out) {
  fmt::print(out, "usage: floodgate-sim <simulator> [options]   (<simulator> --help for its options)\n"
                  "       floodgate-sim --version\n");
  for (const auto& command : kSubcommands) fmt::print(out, "  {:10} {}\n", command.name, command.summary);
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return usage(stderr);
  if (args[0] == "--help" || args[0] == "-h") return usage(stdout);
  if (args[0] == "--version") {
    fmt::print("floodgate-sim {}\n", FLOODGATE_VERSION);
    return 0;
  }
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
