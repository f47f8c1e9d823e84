// ApiKeyPool against the HTTP API simulator, over real sockets and real TLS:
// one test per row of the classification table (docs/http-api-keys.md), the
// fallback chain, budgets and replayed bodies.
#include <catch2/catch.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <unistd.h>

#include "floodgate/core/error.hpp"
#include "http_test_support.hpp"

using namespace floodgate;
using namespace floodgate::http;
using namespace floodgate::test;
using namespace std::chrono_literals;

namespace {

/// Two providers on two simulators: "primary" (p-1, p-2, tier 0) and "backup" (b-1, b-2, tier 1).
struct Setup {
  explicit Setup(sim::HttpApiServerOptions primary_options = {}, sim::HttpApiServerOptions backup_options = {},
                 ApiKeyPoolOptions pool_options = fast_policy()) {
    primary_options.keys = secrets_of(primary_keys);
    backup_options.keys = secrets_of(backup_keys);
    primary = start_server(std::move(primary_options));
    backup = start_server(std::move(backup_options));
    options = pool_options;
    providers = {spec("primary", *primary, primary_keys, 0), spec("backup", *backup, backup_keys, 1)};
  }

  static ApiKeyPoolOptions fast_policy() {
    ApiKeyPoolOptions options;
    options.retry.backoff_base = 1ms;
    options.retry.backoff_cap = 5ms;
    options.retry.max_wait = 0s;  // a test never waits for a cooldown in real time
    return options;
  }

  static ProviderSpec spec(std::string name, const sim::HttpApiServer& server, std::vector<ApiKeySpec> keys,
                           std::uint32_t tier) {
    ProviderSpec provider;
    provider.name = std::move(name);
    provider.base_url = server.url() + "/v1";
    provider.keys = std::move(keys);
    provider.tier = tier;
    return provider;
  }

  ApiKeyPool& pool() {
    if (!api) api = std::make_unique<ApiKeyPool>(io.executor(), client, providers, options);
    return *api;
  }

  std::optional<HealthSnapshot> record(std::string_view id) { return pool().pool().snapshot(id); }

  const Secret& key(std::string_view id) const {
    for (const auto* keys : {&primary_keys, &backup_keys}) {
      for (const auto& k : *keys) {
        if (k.id == id) return k.key;
      }
    }
    throw Error("no such key");
  }
  sim::HttpKeyStats stats(std::string_view id) const {
    return std::string_view(id).starts_with("p") ? primary->stats(key(id)) : backup->stats(key(id));
  }

  IoThread io;
  std::vector<ApiKeySpec> primary_keys = make_keys("p", 2);
  std::vector<ApiKeySpec> backup_keys = make_keys("b", 2);
  std::unique_ptr<sim::HttpApiServer> primary;
  std::unique_ptr<sim::HttpApiServer> backup;
  net::HttpsClient client{io.executor(), trusting_client_options()};
  std::vector<ProviderSpec> providers;
  ApiKeyPoolOptions options;
  std::unique_ptr<ApiKeyPool> api;
};

/// The cooldown a flood wait of `wait` leaves, allowing for the executor's upward jitter.
void check_cooling_for(const HealthSnapshot& record, std::chrono::nanoseconds wait) {
  INFO("cooldown remaining " << std::chrono::duration<double>(record.cooldown_remaining).count() << " s");
  CHECK(record.state == CredentialState::cooling);
  CHECK(record.cooldown_remaining > wait - 1500ms);  // time passed since the answer, date rounding
  CHECK(record.cooldown_remaining <= wait + 2s + 100ms);  // + the executor's jitter (at most 2 s)
}

std::string http_date_in(std::chrono::seconds delay) {
  const auto when = std::chrono::system_clock::to_time_t(
      std::chrono::ceil<std::chrono::seconds>(std::chrono::system_clock::now() + delay));
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT", fmt::gmtime(when));
}

std::filesystem::path temp_file(const std::string& name, std::size_t size) {
  const auto path = std::filesystem::temp_directory_path() /
                    fmt::format("floodgate-http-{}-{}", ::getpid(), name);
  std::ofstream out(path, std::ios::binary);
  for (std::size_t i = 0; i < size; ++i) out.put(static_cast<char>('a' + i % 26));
  return path;
}

}  // namespace

TEST_CASE("ApiKeyPool: a success returns the provider's JSON and the key that served it") {
  Setup setup;
  auto [ec, result] = call(setup.pool(), transcribe("one"));
  REQUIRE_FALSE(ec);
  CHECK(result.status == 200);
  CHECK(result.json["text"].get<std::string>().starts_with("transcript"));
  CHECK(result.provider == "primary");
  CHECK(result.key_id == "p-1");
  CHECK(result.attempts == 1);
  CHECK(setup.primary->applied_ids().at("one") == 1);
}

TEST_CASE("ApiKeyPool: the key travels as a bearer header, a header of its own or a query parameter") {
  for (const auto& auth : {KeyAuth::bearer(), KeyAuth::header("x-api-key"), KeyAuth::query("key")}) {
    Setup setup;
    for (auto& provider : setup.providers) provider.auth = auth;
    auto [ec, result] = call(setup.pool(), ApiCall::get("/ping"));
    INFO("auth style " << static_cast<int>(auth.style));
    CHECK_FALSE(ec);
    CHECK(result.json["ok"] == true);
    CHECK(setup.stats("p-1").unauthorized == 0);
  }
}

TEST_CASE("ApiKeyPool: 429 with Retry-After in seconds cools the key exactly that long and the call moves on") {
  Setup setup;
  setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(429, "Rate limit reached", "7"));
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  REQUIRE_FALSE(ec);
  CHECK(result.key_id == "p-2");
  CHECK(result.attempts == 2);
  check_cooling_for(*setup.record("p-1"), 7s);
  CHECK(setup.record("p-1")->flood_waits == 1);
  for (int i = 0; i < 3; ++i) CHECK(std::get<1>(call(setup.pool(), transcribe(fmt::format("b{}", i)))).key_id == "p-2");
  CHECK(setup.stats("p-1").requests == 1);
}

TEST_CASE("ApiKeyPool: 429 with Retry-After as an HTTP date cools the key until that date") {
  Setup setup;
  setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(429, "Rate limit reached", http_date_in(20s)));
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  REQUIRE_FALSE(ec);
  CHECK(result.key_id == "p-2");
  check_cooling_for(*setup.record("p-1"), 20s);
}

TEST_CASE("ApiKeyPool: 429 without Retry-After uses the reset headers, else the provider's default wait") {
  SECTION("reset header") {
    Setup setup({.retry_after = sim::RetryAfterForm::none, .headers = sim::RateLimitHeaders::openai});
    setup.primary->set_limit(setup.key("p-1"), sim::Rate{0, 10s});  // refuses at once, reset in 10 s
    auto [ec, result] = call(setup.pool(), transcribe("a"));
    REQUIRE_FALSE(ec);
    CHECK(result.key_id == "p-2");
    check_cooling_for(*setup.record("p-1"), 10s);
  }
  SECTION("default wait") {
    Setup setup;
    setup.providers[0].classify.default_wait = 5s;
    setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(429, "slow down"));
    auto [ec, result] = call(setup.pool(), transcribe("a"));
    REQUIRE_FALSE(ec);
    check_cooling_for(*setup.record("p-1"), 5s);
  }
}

TEST_CASE("ApiKeyPool: a remaining count of 0 rests the key before the server has to refuse it") {
  const auto family = GENERATE(sim::RateLimitHeaders::openai, sim::RateLimitHeaders::github,
                               sim::RateLimitHeaders::anthropic);
  INFO("header family " << static_cast<int>(family));
  Setup setup({.limit = sim::Rate{2, 30s}, .headers = family});
  setup.providers.pop_back();  // the primary alone
  for (int i = 0; i < 4; ++i) {
    auto [ec, result] = call(setup.pool(), transcribe(fmt::format("{}", i)));
    CHECK_FALSE(ec);
  }
  // Both keys have used their window and rest: no request is sent.
  auto [ec, result] = call(setup.pool(), transcribe("over"));
  CHECK(ec == errc::all_credentials_cooling);
  REQUIRE(result.earliest);
  CHECK(*result.earliest - SteadyClock{}.now() > 25s);
  for (const char* id : {"p-1", "p-2"}) {
    CHECK(setup.stats(id).requests == 2);
    CHECK(setup.stats(id).rate_limited == 0);
    CHECK(setup.stats(id).sent_during_cooldown == 0);
  }
}

TEST_CASE("ApiKeyPool: an exhausted quota rests the key until its reset, not for a short cooldown") {
  const int status = GENERATE(429, 402);
  Setup setup({.quota = 1, .quota_status = status});
  setup.providers[0].classify.quota_wait = 1h;
  CHECK(std::get<1>(call(setup.pool(), transcribe("1"))).key_id == "p-1");
  CHECK(std::get<1>(call(setup.pool(), transcribe("2"))).key_id == "p-2");
  auto [ec, result] = call(setup.pool(), transcribe("3"));  // both spent: the call falls back
  REQUIRE_FALSE(ec);
  CHECK(result.provider == "backup");
  CHECK(result.attempts == 3);
  check_cooling_for(*setup.record("p-1"), 1h);
  check_cooling_for(*setup.record("p-2"), 1h);
  for (int i = 0; i < 5; ++i) CHECK(std::get<1>(call(setup.pool(), transcribe(fmt::format("x{}", i)))).provider == "backup");
  CHECK(setup.stats("p-1").quota_refused == 1);
  CHECK(setup.stats("p-1").sent_while_exhausted == 0);
  CHECK(setup.stats("p-2").sent_while_exhausted == 0);
  // The account was topped up: the primary serves again.
  setup.primary->reset_quota(setup.key("p-1"));
  CHECK(setup.pool().quota_restored("p-1"));
  CHECK(std::get<1>(call(setup.pool(), transcribe("back"))).key_id == "p-1");
}

TEST_CASE("ApiKeyPool: 401 and 403 disable the key, the call moves on, and the key is never shown") {
  const bool revoked = GENERATE(true, false);
  Setup setup;
  if (revoked) setup.primary->revoke_key(setup.key("p-1"));
  else setup.primary->forbid_key(setup.key("p-1"));
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  REQUIRE_FALSE(ec);
  CHECK(result.key_id == "p-2");
  const auto record = setup.record("p-1");
  CHECK(record->state == CredentialState::disabled);
  CHECK(record->disabled_reason.find(revoked ? "HTTP 401" : "HTTP 403") == 0);
  CHECK(std::get<1>(call(setup.pool(), transcribe("b"))).key_id == "p-2");
  CHECK(setup.stats("p-1").requests == 1);
}

TEST_CASE("ApiKeyPool: a key the server echoes back is redacted from every description") {
  Setup setup;
  setup.providers.pop_back();
  setup.providers[0].keys = {{"wrong", Secret("sk-not-known-to-the-server")}};
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  CHECK(ec == errc::all_credentials_disabled);
  const auto reason = setup.record("wrong")->disabled_reason;
  CHECK(reason.find("Incorrect API key provided") != std::string::npos);
  CHECK(reason.find("sk-not-known-to-the-server") == std::string::npos);
  CHECK(result.description.find("sk-not-known-to-the-server") == std::string::npos);
  CHECK(result.body.find("sk-not-known-to-the-server") != std::string::npos);  // the raw body is the caller's
}

TEST_CASE("ApiKeyPool: 408 and 503 were not processed and are retried even when not idempotent") {
  const int status = GENERATE(408, 503);
  Setup setup;
  setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(status, "try again"));
  auto [ec, result] = call(setup.pool(), transcribe("once"));
  REQUIRE_FALSE(ec);
  CHECK(result.attempts == 2);
  CHECK(setup.primary->applied_ids().at("once") == 1);
}

TEST_CASE("ApiKeyPool: 503 with Retry-After cools the key") {
  Setup setup;
  setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(503, "overloaded", "9"));
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  REQUIRE_FALSE(ec);
  CHECK(result.key_id == "p-2");
  check_cooling_for(*setup.record("p-1"), 9s);
}

TEST_CASE("ApiKeyPool: an answer lost after sending ends a call that is not idempotent with outcome_unknown") {
  const auto fault = GENERATE(sim::HttpFault::answer(500), sim::HttpFault::answer(502), sim::HttpFault::answer(504),
                              sim::HttpFault::drop_connection(), sim::HttpFault::truncated_response(),
                              sim::HttpFault::slow_reply(1500ms));
  INFO("fault kind " << static_cast<int>(fault.kind) << " status " << fault.status);
  Setup setup;
  setup.primary->inject(setup.key("p-1"), fault);
  auto once = transcribe("once");
  once.timeout = 400ms;
  auto [ec, result] = call(setup.pool(), std::move(once));
  CHECK(ec == errc::outcome_unknown);
  CHECK(result.key_id == "p-1");
  CHECK(result.attempts == 1);
  const bool applied = fault.kind == sim::HttpFault::Kind::truncated_response ||
                       fault.kind == sim::HttpFault::Kind::slow_reply;
  CHECK(setup.primary->applied_ids().count("once") == (applied ? 1u : 0u));

  // The same failure on a call its caller says is safe to repeat: retried.
  setup.primary->inject(setup.key("p-1"), fault);
  setup.primary->inject(setup.key("p-2"), fault);
  auto again = transcribe("again");
  again.timeout = 400ms;
  again.idempotent = true;
  auto [ec2, result2] = call(setup.pool(), std::move(again));
  CHECK_FALSE(ec2);
  CHECK(result2.attempts == 3);
}

TEST_CASE("ApiKeyPool: a provider that cannot be reached rests its keys and the call goes to the next") {
  Setup setup;
  {
    sim::HttpApiServer closed({.certificates = shared_certificates()});  // a port nobody listens on any more
    closed.start();
    setup.providers[0].base_url = closed.url();
  }
  auto [ec, result] = call(setup.pool(), transcribe("a"));
  REQUIRE_FALSE(ec);
  CHECK(result.provider == "backup");
  CHECK(result.attempts == 2);
  CHECK(setup.record("p-1")->state == CredentialState::cooling);
  CHECK(setup.record("p-2")->state == CredentialState::cooling);
}

TEST_CASE("ApiKeyPool: 400, 404 and 422 end the call with the provider's message") {
  Setup setup;
  auto [bad_ec, bad] = call(setup.pool(), ApiCall::post_bytes("/transcribe", "{not json", "application/json"));
  CHECK(bad_ec == errc::bad_request);
  CHECK(bad.status == 400);
  CHECK(bad.description == "HTTP 400: We could not parse the JSON body of your request.");
  auto [missing_ec, missing] = call(setup.pool(), ApiCall::post_json("/nowhere", {{"audio", "x"}}));
  CHECK(missing_ec == errc::bad_request);
  CHECK(missing.status == 404);
  CHECK(missing.description.find("Unknown request URL") != std::string::npos);
  auto [invalid_ec, invalid] = call(setup.pool(), ApiCall::post_json("/transcribe", {{"language", "xx"}}));
  CHECK(invalid_ec == errc::bad_request);
  CHECK(invalid.status == 422);
  CHECK(invalid.description.find("field required") != std::string::npos);
  CHECK(invalid.attempts == 1);
  // Neither key is held responsible.
  CHECK(setup.record("p-1")->state == CredentialState::ready);
  CHECK(setup.record("p-2")->state == CredentialState::ready);
}

TEST_CASE("ApiKeyPool: a key over its request budget is skipped without a request") {
  Setup setup;
  setup.providers.pop_back();
  for (auto& key : setup.providers[0].keys) key.budget.requests_per_minute = 2;
  for (int i = 0; i < 4; ++i) CHECK_FALSE(std::get<0>(call(setup.pool(), transcribe(fmt::format("{}", i)))));
  auto [ec, result] = call(setup.pool(), transcribe("over"));
  CHECK(ec == errc::all_credentials_cooling);
  REQUIRE(result.earliest);
  CHECK(*result.earliest - SteadyClock{}.now() > 25s);  // one request refills in 30 s
  CHECK(result.attempts == 0);
  CHECK(setup.stats("p-1").requests + setup.stats("p-2").requests == 4);
}

TEST_CASE("ApiKeyPool: a provider's cost budget sends the rest of the work to the backup") {
  Setup setup;
  setup.providers[0].budget.cost_per_minute = 100;
  CHECK(std::get<1>(call(setup.pool(), transcribe("1", 60))).provider == "primary");
  // 40 left: the primary's keys pause until 60 fit (about 12 s) and the backup takes over.
  CHECK(std::get<1>(call(setup.pool(), transcribe("2", 60))).provider == "backup");
  CHECK(std::get<1>(call(setup.pool(), transcribe("3", 10))).provider == "backup");
  CHECK(setup.stats("p-1").cost + setup.stats("p-2").cost == 60);
}

TEST_CASE("ApiKeyPool: a cost no budget can ever hold is refused before sending") {
  Setup setup;
  setup.providers[0].budget.cost_per_day = 100;
  for (auto& key : setup.providers[1].keys) key.budget.cost_per_minute = 50;
  auto [ec, result] = call(setup.pool(), transcribe("huge", 101));
  CHECK(ec == errc::bad_request);
  CHECK(result.attempts == 0);
  CHECK(result.description.find("cost 101") != std::string::npos);
  CHECK(setup.stats("p-1").requests + setup.stats("b-1").requests == 0);
}

TEST_CASE("ApiKeyPool: bodies are replayed whole on the next key: a file, a multipart form, bytes in memory") {
  Setup setup;
  const std::size_t size = (3u << 20) + 17;
  const auto file = temp_file("upload", size);
  std::vector<ApiCall> calls;
  calls.push_back(ApiCall::post_file("/transcribe", file, "audio/ogg"));
  calls.push_back(ApiCall::post_form("/transcribe", net::MultipartForm().add_field("model", "whisper-1")
                                                        .add_file_from_path("file", file, "audio/ogg")));
  calls.push_back(ApiCall::post_bytes("/transcribe", std::string(size, 'z'), "audio/ogg"));
  for (auto& api_call : calls) {
    const auto before = setup.stats("p-1").body_bytes + setup.stats("p-2").body_bytes;
    setup.primary->inject(setup.key("p-1"), sim::HttpFault::answer(503));
    setup.primary->inject(setup.key("p-2"), sim::HttpFault::answer(503));
    auto [ec, result] = call(setup.pool(), std::move(api_call));
    REQUIRE_FALSE(ec);
    CHECK(result.attempts == 3);
    const auto sent = setup.stats("p-1").body_bytes + setup.stats("p-2").body_bytes - before;
    CHECK(sent >= size);
    CHECK(sent < size + 1024);  // one whole copy (plus the form's framing), not three
    CHECK(result.json["bytes"].get<std::size_t>() == sent);
  }
  std::filesystem::remove(file);
}

TEST_CASE("ApiKeyPool: a missing upload file ends the call with file_error, and no key is blamed") {
  Setup setup;
  auto [ec, result] = call(setup.pool(), ApiCall::post_file("/transcribe", "/nonexistent/floodgate.ogg", "audio/ogg"));
  CHECK(ec == net::errc::file_error);
  CHECK(result.attempts == 1);
  CHECK(setup.stats("p-1").requests == 0);
  CHECK(setup.record("p-1")->state == CredentialState::ready);
}

TEST_CASE("ApiKeyPool: bad configuration is refused with a clear error") {
  IoThread io;
  net::HttpsClient client(io.executor(), trusting_client_options());
  auto provider = [](std::string url, std::vector<ApiKeySpec> keys) {
    ProviderSpec p;
    p.name = "x";
    p.base_url = std::move(url);
    p.keys = std::move(keys);
    return p;
  };
  CHECK_THROWS_WITH(ApiKeyPool(io.executor(), client, {provider("ftp://example.com", make_keys("k", 1))}),
                    Catch::Contains("provider x: base_url"));
  CHECK_THROWS_WITH(ApiKeyPool(io.executor(), client, {provider("https://example.com", {})}),
                    Catch::Contains("no keys"));
  CHECK_THROWS_WITH(ApiKeyPool(io.executor(), client,
                               {provider("https://a.example", make_keys("k", 1)),
                                provider("https://b.example", make_keys("k", 1))}),
                    Catch::Contains("k-1: the id is used twice"));
  auto header = provider("https://example.com", make_keys("k", 1));
  header.auth = KeyAuth::header("");
  CHECK_THROWS_WITH(ApiKeyPool(io.executor(), client, {header}), Catch::Contains("needs a name"));
}

TEST_CASE("ApiKeyPool: a call cancelled on the wire ends at once with operation_canceled and is not sent again",
          "[cancel]") {
  Setup setup;
  setup.primary->inject(setup.key("p-1"), sim::HttpFault::slow_reply(800ms));
  setup.primary->inject(setup.key("p-2"), sim::HttpFault::slow_reply(800ms));
  boost::asio::cancellation_signal signal;
  std::promise<std::tuple<std::error_code, ApiResult>> done;
  boost::asio::post(setup.io.executor(), [&] {
    setup.pool().async_call(transcribe("cancelled"),
                            boost::asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, ApiResult r) {
                              done.set_value({ec, std::move(r)});
                            }));
  });
  // Wait (bounded) until the request is on the wire, then cancel.
  for (int i = 0; i < 200 && setup.stats("p-1").requests + setup.stats("p-2").requests == 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  const auto cancelled_at = std::chrono::steady_clock::now();
  boost::asio::post(setup.io.executor(), [&] { signal.emit(boost::asio::cancellation_type::terminal); });
  auto future = done.get_future();
  REQUIRE(future.wait_for(400ms) == std::future_status::ready);  // not the 800 ms reply
  auto [ec, result] = future.get();
  CHECK(ec == std::errc::operation_canceled);
  CHECK(std::chrono::steady_clock::now() - cancelled_at < 400ms);
  CHECK(result.attempts == 1);
  CHECK((result.key_id == "p-1" || result.key_id == "p-2"));  // who sent it: it may still be applied
  // The reply comes: it counts for the key; nothing was sent again, to any provider.
  for (int i = 0; i < 200 && !setup.record(result.key_id)->successes; ++i) std::this_thread::sleep_for(10ms);
  CHECK(setup.record(result.key_id)->successes == 1);
  CHECK(setup.primary->applied_ids().count("cancelled") == 1);
  CHECK(setup.backup->applied_ids().count("cancelled") == 0);
}

TEST_CASE("ApiKeyPool: destroyed while a call waits to send again it sends nothing more and the call ends with shut_down") {
  // The order a program shutting down uses: the pool, then its HTTPS client,
  // while a call still waits out its only key's cooldown to be sent again.
  const auto keys = make_keys("k", 1);
  sim::HttpApiServerOptions server_options;
  server_options.keys = secrets_of(keys);
  auto server = start_server(std::move(server_options));
  server->inject(keys[0].key, sim::HttpFault::answer(429, "Rate limit reached", "1"));
  IoThread io;
  auto client = std::make_unique<net::HttpsClient>(io.executor(), trusting_client_options());
  auto pending = [&] {
    ApiKeyPoolOptions options;
    options.retry.max_wait = 30s;  // the call waits out the cooldown instead of ending
    ApiKeyPool api(io.executor(), *client, {Setup::spec("only", *server, keys, 0)}, options);
    auto call = api.async_call(transcribe("once"), boost::asio::use_future);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (api.pool().snapshot("k-1")->state != CredentialState::cooling && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return call;
  }();  // the pool is destroyed here, its call waiting out the cooldown
  client.reset();
  auto [ec, result] = pending.get();
  CHECK(ec == errc::shut_down);
  CHECK(server->stats(keys[0].key).requests == 1);
  CHECK(server->applied_ids().count("once") == 0);
}

namespace {

/// A cooldown store the program may destroy right after the pool: the test
/// says when, and the store counts the writes that come after that.
struct WatchedCooldownSink : CooldownSink {
  std::optional<CooldownRecord> find(std::string_view) const override { return std::nullopt; }
  void set_cooldown(std::string_view, WallTime) override { written(); }
  void set_scoped_cooldown(std::string_view, std::string_view, WallTime) override { written(); }
  void clear_cooldowns(std::string_view) override { written(); }
  void set_disabled(std::string_view, std::string_view) override { written(); }
  void set_enabled(std::string_view) override { written(); }
  void written() {
    ++writes;
    if (gone) ++writes_after_gone;
  }
  std::atomic<bool> gone{false};
  std::atomic<int> writes{0};
  std::atomic<int> writes_after_gone{0};
};

}  // namespace

TEST_CASE("ApiKeyPool: a reply that arrives after the pool is destroyed is not written to its CooldownSink") {
  // The reply says the key's window is used up (remaining 0): the key rests,
  // which the pool would write to the store the program has destroyed by then.
  const auto keys = make_keys("k", 1);
  sim::HttpApiServerOptions server_options;
  server_options.keys = secrets_of(keys);
  server_options.limit = sim::Rate{1, 60s};
  server_options.headers = sim::RateLimitHeaders::openai;
  auto server = start_server(std::move(server_options));
  server->inject(keys[0].key, sim::HttpFault::slow_reply(600ms));
  IoThread io;
  net::HttpsClient client(io.executor(), trusting_client_options());
  WatchedCooldownSink store;
  auto pending = [&] {
    ApiKeyPool api(io.executor(), client, {Setup::spec("only", *server, keys, 0)}, Setup::fast_policy());
    api.pool().persist_to(store);
    auto call = api.async_call(transcribe("late"), boost::asio::use_future);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (server->stats(keys[0].key).requests < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return call;
  }();  // the pool is destroyed here, its request on the wire
  store.gone = true;
  auto [ec, result] = pending.get();
  CHECK_FALSE(ec);  // a request already on the wire completes as it will
  CHECK(server->applied_ids().count("late") == 1);
  CHECK(store.writes_after_gone == 0);
}
