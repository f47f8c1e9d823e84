// sim::BotApiServer through HttpsClient over TLS: methods, flood control in
// virtual time (ManualClock), counters and injected failures.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <future>
#include <thread>

#include "floodgate/core/clock.hpp"
#include "floodgate/core/error.hpp"
#include "net_test_support.hpp"

namespace net = floodgate::net;
namespace sim = floodgate::sim;
using floodgate::ManualClock;
using floodgate::Secret;
using floodgate::test::bot_target;
using floodgate::test::call_api;
using floodgate::test::client_options_for;
using floodgate::test::IoThread;
using floodgate::test::send;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const Secret kBotA{"111111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
const Secret kBotB{"222222:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"};

/// A TLS simulator on virtual time with two tokens, and a client trusting it.
struct Harness {
  explicit Harness(sim::BotApiLimits limits = {std::nullopt, std::nullopt, std::nullopt})
      : server(sim::BotApiServerOptions{.tokens = {kBotA, kBotB}, .limits = limits}, clock) {
    server.start();
  }

  floodgate::test::ApiReply call(const Secret& token, std::string_view method, const json& params = json::object()) {
    return call_api(client, server, token, method, params);
  }
  floodgate::test::ApiReply send_text(const Secret& token, std::int64_t chat_id, std::string text = "hi") {
    return call(token, "sendMessage", {{"chat_id", chat_id}, {"text", std::move(text)}});
  }

  ManualClock clock;
  sim::BotApiServer server;
  IoThread io;
  net::HttpsClient client{io.executor(), client_options_for(server)};
};

std::string retry_after_body(int seconds) {
  return fmt::format(
      R"({{"ok":false,"error_code":429,"description":"Too Many Requests: retry after {0}","parameters":{{"retry_after":{0}}}}})",
      seconds);
}

}  // namespace

TEST_CASE("BotApiServer: getMe describes the bot named by the token") {
  Harness h;
  const auto me = h.call(kBotA, "getMe");
  CHECK(me.status == 200);
  CHECK(me.body["ok"] == true);
  CHECK(me.body["result"]["id"] == 111111);
  CHECK(me.body["result"]["is_bot"] == true);
  CHECK(me.body["result"]["username"] == "sim111111_bot");
  CHECK(h.call(kBotA, "GETME").status == 200);  // method names are case-insensitive
}

TEST_CASE("BotApiServer: sendMessage, editMessageText and copyMessage") {
  Harness h;
  const auto sent = h.send_text(kBotA, 10, "draft");
  REQUIRE(sent.status == 200);
  const auto& message = sent.body["result"];
  CHECK(message["message_id"] == 1);
  CHECK(message["chat"] == json{{"id", 10}, {"first_name", "Sim User"}, {"type", "private"}});
  CHECK(message["from"]["id"] == 111111);
  CHECK(message["text"] == "draft");
  CHECK(message["date"].is_number_integer());

  const auto edited = h.call(kBotA, "editMessageText", {{"chat_id", 10}, {"message_id", 1}, {"text", "final"}});
  CHECK(edited.status == 200);
  CHECK(edited.body["result"]["text"] == "final");
  CHECK(edited.body["result"].contains("edit_date"));

  const auto unchanged = h.call(kBotA, "editMessageText", {{"chat_id", 10}, {"message_id", 1}, {"text", "final"}});
  CHECK(unchanged.status == 400);
  CHECK(unchanged.body["description"].get<std::string>().starts_with("Bad Request: message is not modified"));

  const auto not_owner = h.call(kBotB, "editMessageText", {{"chat_id", 10}, {"message_id", 1}, {"text", "mine"}});
  CHECK(not_owner.status == 400);
  CHECK(not_owner.body["description"] == "Bad Request: message can't be edited");

  const auto missing = h.call(kBotA, "editMessageText", {{"chat_id", 10}, {"message_id", 99}, {"text", "x"}});
  CHECK(missing.body["description"] == "Bad Request: message to edit not found");

  const auto copied = h.call(kBotB, "copyMessage", {{"chat_id", 20}, {"from_chat_id", 10}, {"message_id", 1}});
  CHECK(copied.status == 200);
  CHECK(copied.body["result"] == json{{"message_id", 1}});
  const auto chat20 = h.server.messages(20);
  REQUIRE(chat20.size() == 1);
  CHECK(chat20[0].text == "final");
  CHECK(chat20[0].sender_id == 222222);
  CHECK(h.server.messages(10)[0].edits == 1);

  CHECK(h.call(kBotA, "sendMessage", {{"text", "x"}}).body["description"] == "Bad Request: chat_id is empty");
  CHECK(h.call(kBotA, "sendMessage", {{"chat_id", 1}}).body["description"] == "Bad Request: message text is empty");
  const auto unknown = h.call(kBotA, "launchRockets");
  CHECK(unknown.status == 404);
  CHECK(unknown.body == json{{"ok", false}, {"error_code", 404}, {"description", "Not Found"}});
}

TEST_CASE("BotApiServer: parameters as query string and urlencoded form") {
  Harness h;
  auto query = net::RequestTarget("/bot").append(kBotA).append("/sendMessage?chat_id=5&text=a%20b+c");
  auto [ec, response] = send(h.client, net::HttpRequest::get(h.server.endpoint(), query));
  REQUIRE_FALSE(ec);
  CHECK(json::parse(response.body)["result"]["text"] == "a b c");

  auto form = net::HttpRequest::get(h.server.endpoint(), bot_target(kBotA, "sendMessage"));
  form.method = net::HttpMethod::post;
  form.body = net::TextBody{"application/x-www-form-urlencoded", "chat_id=6&text=x%26y"};
  auto [ec2, response2] = send(h.client, form);
  REQUIRE_FALSE(ec2);
  CHECK(json::parse(response2.body)["result"]["text"] == "x&y");

  auto broken = net::HttpRequest::post_json(h.server.endpoint(), bot_target(kBotA, "sendMessage"), nullptr);
  std::get<net::TextBody>(broken.body).data = "{not json";
  auto [ec3, response3] = send(h.client, broken);
  CHECK(response3.status == 400);
  CHECK(h.server.stats(kBotA).requests == 3);
}

TEST_CASE("BotApiServer: sendDocument by file_id and getFile") {
  Harness h;
  const auto file_id = h.server.add_file("PDF bytes", "a.pdf");
  const auto sent = h.call(kBotA, "sendDocument", {{"chat_id", 3}, {"document", file_id}, {"caption", "c"}});
  REQUIRE(sent.status == 200);
  CHECK(sent.body["result"]["document"]["file_id"] == file_id);
  CHECK(sent.body["result"]["caption"] == "c");
  const auto file = h.call(kBotA, "getFile", {{"file_id", file_id}});
  CHECK(file.body["result"]["file_size"] == 9);
  CHECK(file.body["result"]["file_path"].get<std::string>().ends_with(".pdf"));
  CHECK(h.call(kBotA, "getFile", {{"file_id", "nope"}}).body["description"] == "Bad Request: invalid file_id");
  CHECK(h.call(kBotA, "sendDocument", {{"chat_id", 3}, {"document", "nope"}}).status == 400);
}

TEST_CASE("BotApiServer: per-chat limit answers 429 like Telegram, and the wait grows when ignored") {
  Harness h({.overall = std::nullopt, .per_chat = sim::Rate{1, 1s}, .per_group = std::nullopt});
  CHECK(h.send_text(kBotA, 1).status == 200);

  auto [ec, response] = send(h.client, net::HttpRequest::post_json(h.server.endpoint(), bot_target(kBotA, "sendMessage"),
                                                                   {{"chat_id", 1}, {"text", "again"}}));
  REQUIRE_FALSE(ec);
  CHECK(response.status == 429);
  CHECK(response.body == retry_after_body(1));

  CHECK(h.send_text(kBotA, 2).status == 200);  // another chat is not limited
  CHECK(h.send_text(kBotB, 1).status == 200);  // nor is another token

  // Ignoring the wait doubles it: 1 -> 2 -> 4.
  CHECK(h.send_text(kBotA, 1).body == json::parse(retry_after_body(2)));
  CHECK(h.send_text(kBotA, 1).body == json::parse(retry_after_body(4)));
  auto stats = h.server.stats(kBotA);
  CHECK(stats.rate_limited == 3);
  CHECK(stats.sent_during_cooldown == 2);

  h.clock.advance(3999ms);
  const auto late = h.send_text(kBotA, 1);  // 1 ms early: still counted, and told to wait again
  CHECK(late.body == json::parse(retry_after_body(1)));  // 1 ms left, doubled, rounded up to a second
  CHECK(h.server.stats(kBotA).sent_during_cooldown == 3);
  h.clock.advance(1s);
  CHECK(h.send_text(kBotA, 1).status == 200);
  CHECK(h.server.stats(kBotA).sent_during_cooldown == 3);
}

TEST_CASE("BotApiServer: a client that waits exactly retry_after is never counted as ignoring it") {
  Harness h({.overall = std::nullopt, .per_chat = sim::Rate{1, 1s}, .per_group = std::nullopt});
  for (int i = 0; i < 5; ++i) {
    CHECK(h.send_text(kBotA, 1).status == 200);
    const auto limited = h.send_text(kBotA, 1);
    REQUIRE(limited.status == 429);
    h.clock.advance(std::chrono::seconds(limited.body["parameters"]["retry_after"].get<int>()));
  }
  const auto stats = h.server.stats(kBotA);
  CHECK(stats.sent_during_cooldown == 0);
  CHECK(stats.rate_limited == 5);
  CHECK(stats.succeeded == 5);
  CHECK(stats.requests == 10);
  CHECK(stats.by_method.at("sendmessage") == 10);
}

TEST_CASE("BotApiServer: the overall limit cools the whole token") {
  Harness h({.overall = sim::Rate{3, 1s}, .per_chat = std::nullopt, .per_group = std::nullopt});
  for (int chat = 1; chat <= 3; ++chat) CHECK(h.send_text(kBotA, chat).status == 200);
  CHECK(h.send_text(kBotA, 4).body == json::parse(retry_after_body(1)));
  CHECK(h.send_text(kBotA, 5).status == 429);  // any chat: the token itself is cooling
  CHECK(h.server.stats(kBotA).sent_during_cooldown == 1);
  CHECK(h.call(kBotA, "getMe").status == 200);  // only sends are limited
  h.clock.advance(2s);
  CHECK(h.send_text(kBotA, 5).status == 200);
}

TEST_CASE("BotApiServer: the per-group limit counts per minute") {
  Harness h({.overall = std::nullopt, .per_chat = std::nullopt, .per_group = sim::Rate{20, 1min}});
  for (int i = 0; i < 20; ++i) {
    CHECK(h.send_text(kBotA, -100, fmt::format("m{}", i)).status == 200);
    h.clock.advance(1s);
  }
  // The first of the 20 leaves the window 60 s after it was sent: 40 s from now.
  CHECK(h.send_text(kBotA, -100).body == json::parse(retry_after_body(40)));
  CHECK(h.send_text(kBotA, 100).status == 200);  // a private chat is not a group
  h.clock.advance(40s);
  CHECK(h.send_text(kBotA, -100).status == 200);
}

TEST_CASE("BotApiServer: set_limits overrides one token") {
  Harness h;  // unlimited by default
  h.server.set_limits(kBotB, {.overall = sim::Rate{1, 1s}, .per_chat = std::nullopt, .per_group = std::nullopt});
  CHECK(h.send_text(kBotA, 1).status == 200);
  CHECK(h.send_text(kBotA, 1).status == 200);
  CHECK(h.send_text(kBotB, 1).status == 200);
  CHECK(h.send_text(kBotB, 1).status == 429);
}

TEST_CASE("BotApiServer: 401 for a revoked or unknown token") {
  Harness h;
  CHECK(h.call(kBotA, "getMe").status == 200);
  h.server.revoke_token(kBotA);
  const auto revoked = h.call(kBotA, "getMe");
  CHECK(revoked.status == 401);
  CHECK(revoked.body == json{{"ok", false}, {"error_code", 401}, {"description", "Unauthorized"}});
  CHECK(h.server.stats(kBotA).unauthorized == 1);
  CHECK(h.server.stats(kBotA).requests == 2);
  CHECK(h.call(Secret("999:unknown-token-xxxxxxxx"), "getMe").status == 401);
}

TEST_CASE("BotApiServer: injected 5xx and invalid JSON") {
  Harness h;
  h.server.inject(kBotA, sim::Fault::server_error(502), 2);
  h.server.inject(kBotA, sim::Fault::invalid_json());
  for (int i = 0; i < 2; ++i) {
    const auto failed = h.call(kBotA, "sendMessage", {{"chat_id", 1}, {"text", "x"}});
    CHECK(failed.status == 502);
    CHECK(failed.body == json{{"ok", false}, {"error_code", 502}, {"description", "Bad Gateway"}});
  }
  auto [ec, response] = send(h.client, net::HttpRequest::get(h.server.endpoint(), bot_target(kBotA, "getMe")));
  REQUIRE_FALSE(ec);
  CHECK(response.status == 200);
  CHECK_FALSE(json::accept(response.body));
  CHECK(h.call(kBotA, "getMe").status == 200);  // faults are used up
  const auto stats = h.server.stats(kBotA);
  CHECK(stats.faults == 3);
  CHECK(stats.requests == 4);
  CHECK(h.server.messages(1).empty());  // failed sends did nothing
}

TEST_CASE("BotApiServer: a slow reply still arrives") {
  Harness h;
  h.server.inject(kBotA, sim::Fault::slow_reply(50ms));
  const auto started = std::chrono::steady_clock::now();
  CHECK(h.call(kBotA, "getMe").status == 200);
  CHECK(std::chrono::steady_clock::now() - started >= 50ms);
}

TEST_CASE("BotApiServer: migrate_to_chat_id") {
  Harness h;
  h.server.migrate_chat(-42, -1000000000042);
  const auto reply = h.send_text(kBotA, -42);
  CHECK(reply.status == 400);
  CHECK(reply.body["description"] == "Bad Request: group chat was upgraded to a supergroup chat");
  CHECK(reply.body["parameters"]["migrate_to_chat_id"] == -1000000000042);
  const auto moved = h.send_text(kBotA, -1000000000042);
  CHECK(moved.body["result"]["chat"]["type"] == "supergroup");
}

TEST_CASE("BotApiServer: getUpdates returns queued updates and confirms by offset") {
  Harness h;
  h.server.push_message(kBotA, 77, "hello bot");
  const auto second = h.server.push_update(kBotA, {{"callback_query", {{"id", "1"}}}});
  const auto updates = h.call(kBotA, "getUpdates");
  REQUIRE(updates.body["result"].size() == 2);
  CHECK(updates.body["result"][0]["message"]["text"] == "hello bot");
  CHECK(updates.body["result"][0]["message"]["from"]["is_bot"] == false);
  CHECK(updates.body["result"][1]["update_id"] == second);
  CHECK(h.call(kBotA, "getUpdates", {{"offset", second}}).body["result"].size() == 1);
  CHECK(h.call(kBotA, "getUpdates", {{"offset", second + 1}}).body["result"].empty());
  CHECK(h.call(kBotB, "getUpdates").body["result"].empty());  // updates are per token
}

TEST_CASE("BotApiServer: a long poll returns as soon as an update is pushed") {
  Harness h;
  auto poll = std::async(std::launch::async, [&] { return h.call(kBotA, "getUpdates", {{"timeout", 30}}); });
  REQUIRE(poll.wait_for(100ms) == std::future_status::timeout);  // it is waiting
  const auto started = std::chrono::steady_clock::now();
  h.server.push_message(kBotA, 5, "wake up");
  REQUIRE(poll.wait_for(5s) == std::future_status::ready);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  const auto updates = poll.get();
  REQUIRE(updates.body["result"].size() == 1);
  CHECK(updates.body["result"][0]["message"]["text"] == "wake up");
}

TEST_CASE("BotApiServer: a dropped connection is a closed connection for the client") {
  Harness h;
  h.server.inject(kBotA, sim::Fault::drop_connection());
  auto [ec, response] = send(h.client, net::HttpRequest::get(h.server.endpoint(), bot_target(kBotA, "getMe")));
  CHECK(ec == net::errc::response_cut_off);
  CHECK(h.server.stats(kBotA).requests == 1);
  CHECK(h.call(kBotA, "getMe").status == 200);
}

TEST_CASE("BotApiServer: stop closes the port and keeps the statistics") {
  Harness h;
  CHECK(h.call(kBotA, "getMe").status == 200);
  h.server.stop();
  h.client.close_idle_connections();
  auto [ec, response] = send(h.client, net::HttpRequest::get(h.server.endpoint(), bot_target(kBotA, "getMe")));
  CHECK(ec == net::errc::connect_failed);
  CHECK(h.server.stats(kBotA).requests == 1);
  h.server.stop();  // idempotent
}

TEST_CASE("Rate::parse") {
  CHECK(sim::Rate::parse("30/s") == sim::Rate{30, 1s});
  CHECK(sim::Rate::parse("20/min") == sim::Rate{20, 1min});
  CHECK(sim::Rate::parse("5/250ms") == sim::Rate{5, 250ms});
  CHECK(sim::Rate::parse("100/h") == sim::Rate{100, 1h});
  for (const char* bad : {"", "30", "0/s", "-1/s", "3/fortnight", "x/s", "3/0s"}) {
    CHECK_THROWS_AS(sim::Rate::parse(bad), floodgate::Error);
  }
}
