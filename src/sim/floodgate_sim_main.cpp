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
// The command line is CLI11's (Debian's libcli11-dev): each simulator is a
// subcommand with its options, `--help` at every level, `--version`. A bad
// argument (an unknown option, a missing or invalid value) is reported by
// CLI11 on stderr with exit status 2; a failure while running (a file that
// cannot be read or written, no tokens) with exit status 1.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <utility>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>
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

std::optional<floodgate::sim::Rate> parse_limit(std::string_view text) {
  if (text == "off") return std::nullopt;
  return floodgate::sim::Rate::parse(text);
}

/// A CLI11 check that runs `parse` on the option's text: its error becomes
/// CLI11's ("--per-chat: invalid rate '3/fortnight'", exit status 2).
CLI::Validator parsed_by(std::function<void(std::string_view)> parse, std::string name) {
  return CLI::Validator(
      [parse = std::move(parse)](std::string& text) -> std::string {
        try {
          parse(text);
          return {};
        } catch (const std::exception& e) {
          return e.what();
        }
      },
      "", std::move(name));
}

/// A number above 0 (CLI11 2.1's PositiveNumber prints its range as 0 to DBL_MAX).
const CLI::Validator kAboveZero = parsed_by(
    [](std::string_view text) {
      double value = 0;
      if (!CLI::detail::lexical_cast(std::string(text), value) || !(value > 0)) {
        throw floodgate::Error(fmt::format("{} is not a number above 0", text));
      }
    },
    "ABOVE 0");

/// `--overall RATE` and its kin: N/s, N/min, N/h, N/250ms ... or "off".
void add_limit(CLI::App& command, const std::string& flag, std::optional<floodgate::sim::Rate>& limit,
               const std::string& help) {
  command.add_option_function<std::string>(flag, [&limit](const std::string& text) { limit = parse_limit(text); }, help)
      ->type_name("RATE")
      ->check(parsed_by([](std::string_view text) { parse_limit(text); }, "RATE"));
}

/// An option naming one of `choices` ("--retry-after date"); another word is
/// CLI11's error, naming the option and the words it takes.
template <class T>
void add_choice(CLI::App& command, const std::string& flag, T& target, std::vector<std::pair<std::string, T>> choices,
                const std::string& help, const std::string& type_name) {
  std::vector<std::string> names;
  names.reserve(choices.size());
  for (const auto& choice : choices) names.push_back(choice.first);
  command
      .add_option_function<std::string>(
          flag,
          [&target, choices](const std::string& text) {
            for (const auto& [name, value] : choices) {
              if (name == text) target = value;
            }
          },
          help)
      ->type_name(type_name)
      ->check(CLI::IsMember(names));
}

nlohmann::json read_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw floodgate::Error(fmt::format("cannot read scenario file {}", path));
  auto scenario = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (scenario.is_discarded()) throw floodgate::Error(fmt::format("{}: not valid JSON", path));
  return scenario;
}

// ---- botapi ----

struct BotApiCommand {
  floodgate::sim::BotApiServerOptions options;
  std::vector<std::string> tokens;
  std::vector<std::string> token_files;
  std::string scenario;
  std::string ca_out;
  std::string port_out;
};

void define(CLI::App& command, BotApiCommand& c) {
  auto& o = c.options;
  command.add_option("--port", o.port, "listen on 127.0.0.1:P (default: a free port)")->type_name("P");
  command.add_option("--token", c.tokens, "accept this bot token (repeatable)")->type_name("T");
  command.add_option("--tokens-file", c.token_files, "accept the tokens in F, one per line (# comments)")
      ->type_name("F");
  add_limit(command, "--overall", o.limits.overall, "per-token limit over all chats (default 30/s)");
  add_limit(command, "--per-chat", o.limits.per_chat, "per-token limit per chat (default 1/s)");
  command.add_option("--per-chat-burst", o.limits.per_chat_burst, "messages a quiet chat takes at once (default 3)")
      ->type_name("N")
      ->check(kAboveZero);
  add_limit(command, "--per-group", o.limits.per_group,
            "per-token limit per group chat (default 20/min); RATE is N/s, N/min, N/h, N/250ms ... or \"off\"");
  command.add_option("--scenario", c.scenario,
                     "bots, users, groups, updates and faults from a JSON scenario (docs/bot-api-simulator.md); "
                     "applied after the flags, so its \"limits\" win")
      ->type_name("FILE");
  command.add_flag_callback("--closed-world", [&o] { o.open_world = false; },
                            "chats the scenario does not declare are \"chat not found\" (default: every undeclared "
                            "user has started every bot)");
  command.add_flag_callback("--plain", [&o] { o.tls = false; }, "serve plain HTTP instead of HTTPS");
  command.add_option("--ca-out", c.ca_out, "write the CA certificate that clients must trust to FILE")
      ->type_name("FILE");
  command.add_option("--port-out", c.port_out, "write the port to FILE once listening (for scripts)")
      ->type_name("FILE");
}

int run(BotApiCommand& c) {
  auto& options = c.options;
  for (const auto& token : c.tokens) options.tokens.emplace_back(token);
  for (const auto& file : c.token_files) {
    for (auto& token : read_tokens_file(file)) options.tokens.push_back(std::move(token));
  }
  nlohmann::json scenario;
  if (!c.scenario.empty()) scenario = read_scenario(c.scenario);
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
  if (!c.ca_out.empty()) {
    write_file(c.ca_out, server.ca_pem());
    fmt::print("botapi: CA certificate written to {}\n", c.ca_out);
  }
  if (!c.port_out.empty()) write_file(c.port_out, fmt::format("{}\n", server.port()));  // last: "ready"
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

// ---- kite ----

struct KiteCommand {
  floodgate::sim::KiteTickerServerOptions options;
  std::vector<std::string> key_files;
  std::vector<std::string> keys;
  std::vector<std::string> tokens;
  bool tls = false;
  std::string ca_out;
};

void define(CLI::App& command, KiteCommand& c) {
  command.add_option("--port", c.options.port, "listen on 127.0.0.1:P (default: any free port)")->type_name("P");
  command.add_option("--keys-file", c.key_files, "one \"api_key access_token\" per line (# comments allowed)")
      ->type_name("F");
  command.add_option("--key", c.keys, "an API key (repeatable), each followed by its --token")->type_name("K");
  command.add_option("--token", c.tokens, "the access token of the --key before it")->type_name("T");
  command.add_option("--rate", c.options.ticks_per_second, "tick frames per second on each connection (default 10)")
      ->type_name("N")
      ->check(kAboveZero);
  auto* tls = command.add_flag("--tls", c.tls, "serve wss:// with a generated certificate");
  command.add_option("--ca-out", c.ca_out, "write the CA certificate of --tls to FILE")->type_name("FILE")->needs(tls);
  command.callback([&c] {
    if (c.keys.size() != c.tokens.size()) {
      throw CLI::ValidationError("--key", fmt::format("{} keys and {} tokens: each --key K needs its --token T",
                                                      c.keys.size(), c.tokens.size()));
    }
  });
}

int run(KiteCommand& c) {
  auto& options = c.options;
  for (const auto& file : c.key_files) {
    for (auto& key : read_keys_file(file)) options.keys.push_back(std::move(key));
  }
  for (std::size_t i = 0; i < c.keys.size(); ++i) options.keys.push_back({c.keys[i], floodgate::Secret(c.tokens[i])});
  if (options.keys.empty()) throw floodgate::Error("no API keys: give --keys-file or --key/--token");
  std::string ca_pem;
  if (c.tls) {
    const auto certificates = floodgate::sim::TestCertificates::generate();
    options.tls = floodgate::net::make_server_tls_context(certificates.server_chain_pem, certificates.server_key_pem);
    ca_pem = certificates.ca_pem;
  }
  const auto key_count = options.keys.size();

  const auto stop_signals = block_stop_signals();
  floodgate::sim::KiteTickerServer server(std::move(options));
  server.start();
  if (!c.ca_out.empty()) {
    write_file(c.ca_out, ca_pem);
    fmt::print("kite: CA certificate written to {}\n", c.ca_out);
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

// ---- http ----

struct HttpCommand {
  floodgate::sim::HttpApiServerOptions options;
  std::vector<std::string> keys;
  std::vector<std::string> key_files;
  std::string ca_out;
  std::string port_out;
};

void define(CLI::App& command, HttpCommand& c) {
  using floodgate::sim::RateLimitHeaders;
  using floodgate::sim::RetryAfterForm;
  auto& o = c.options;
  command.add_option("--port", o.port, "listen on 127.0.0.1:P (default: a free port)")->type_name("P");
  command.add_option("--key", c.keys, "accept this API key (repeatable)")->type_name("K");
  command.add_option("--keys-file", c.key_files, "accept the keys in F, one per line (# comments)")->type_name("F");
  add_limit(command, "--limit", o.limit, "requests per key in a fixed window (default 10/s; \"off\")");
  command.add_option_function<std::uint64_t>("--quota", [&o](std::uint64_t calls) { o.quota = calls; },
                                             "successful calls per key before its quota is spent")
      ->type_name("N")
      ->check(kAboveZero);
  command.add_option("--quota-status", o.quota_status, "answer a spent quota with 429 (default) or 402")
      ->type_name("S")
      ->check(CLI::IsMember({429, 402}));
  add_choice(command, "--retry-after", o.retry_after,
             {{"seconds", RetryAfterForm::seconds}, {"date", RetryAfterForm::http_date}, {"none", RetryAfterForm::none}},
             "seconds (default), date or none", "FORM");
  add_choice(command, "--headers", o.headers,
             {{"none", RateLimitHeaders::none},
              {"openai", RateLimitHeaders::openai},
              {"github", RateLimitHeaders::github},
              {"anthropic", RateLimitHeaders::anthropic}},
             "rate-limit headers: none (default), openai, github, anthropic", "FAMILY");
  command.add_option("--random-429", o.rate_limit_probability, "answer this share of requests 429 at random (0..1)")
      ->type_name("P")
      ->check(CLI::Range(0.0, 1.0));
  command.add_option("--seed", o.seed, "seed of the random 429s")->type_name("N")->check(kAboveZero);
  command.add_flag_callback("--plain", [&o] { o.tls = false; }, "serve plain HTTP instead of HTTPS");
  command.add_option("--ca-out", c.ca_out, "write the CA certificate that clients must trust to FILE")
      ->type_name("FILE");
  command.add_option("--port-out", c.port_out, "write the port to FILE once listening (for scripts)")
      ->type_name("FILE");
  command.footer("Serves POST /v1/transcribe and GET /v1/ping (docs/http-api-keys.md).\n");
}

int run(HttpCommand& c) {
  auto& options = c.options;
  for (const auto& key : c.keys) options.keys.emplace_back(key);
  for (const auto& file : c.key_files) {
    for (auto& key : read_tokens_file(file)) options.keys.push_back(std::move(key));
  }
  if (options.keys.empty()) throw floodgate::Error("no keys: pass --key or --keys-file");
  const auto keys = options.keys;

  const auto stop_signals = block_stop_signals();
  floodgate::sim::HttpApiServer server(std::move(options));
  server.start();
  if (!c.ca_out.empty()) {
    write_file(c.ca_out, server.ca_pem());
    fmt::print("http: CA certificate written to {}\n", c.ca_out);
  }
  if (!c.port_out.empty()) write_file(c.port_out, fmt::format("{}\n", server.port()));  // last: "ready"
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

/// The exit status of a bad command line (CLI11's own codes are 100 and up;
/// 2 is what getopt and argparse programs use, and what scripts expect).
constexpr int kUsageError = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("floodgate's simulators as a standalone program, to test a bot written in any language",
               "floodgate-sim");
  app.set_version_flag("--version", std::string("floodgate-sim ") + FLOODGATE_VERSION);
  app.require_subcommand(0, 1);  // none: the help on stderr (below); an unknown word: CLI11's error
  BotApiCommand botapi;
  KiteCommand kite;
  HttpCommand http;
  auto* botapi_command =
      app.add_subcommand("botapi", "a Telegram Bot API server with flood control and fault injection");
  auto* kite_command = app.add_subcommand("kite", "a Kite ticker WebSocket server streaming binary ticks");
  auto* http_command = app.add_subcommand("http", "a rate-limited JSON API with API keys, quotas and fault injection");
  define(*botapi_command, botapi);
  define(*kite_command, kite);
  define(*http_command, http);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // --help and --version: 0; a mistake: its message on stderr
    return status == 0 ? 0 : kUsageError;
  }
  if (app.get_subcommands().empty()) {
    fmt::print(stderr, "{}", app.help());
    return kUsageError;
  }
  const auto* command = app.get_subcommands().front();
  try {
    if (command == botapi_command) return run(botapi);
    if (command == kite_command) return run(kite);
    return run(http);
  } catch (const std::exception& e) {
    fmt::print(stderr, "floodgate-sim {}: {}\n", command->get_name(), e.what());
    return 1;
  }
}
