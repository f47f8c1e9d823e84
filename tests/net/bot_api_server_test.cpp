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

  // Bot B's private chat with user 10 is its own: its message 1 is not bot A's.
  const auto not_owner = h.call(kBotB, "editMessageText", {{"chat_id", 10}, {"message_id", 1}, {"text", "mine"}});
  CHECK(not_owner.status == 400);
  CHECK(not_owner.body["description"] == "Bad Request: message to edit not found");

  const auto missing = h.call(kBotA, "editMessageText", {{"chat_id", 10}, {"message_id", 99}, {"text", "x"}});
  CHECK(missing.body["description"] == "Bad Request: message to edit not found");

  CHECK(h.call(kBotB, "copyMessage", {{"chat_id", 20}, {"from_chat_id", 10}, {"message_id", 1}}).body["description"] ==
        "Bad Request: message to copy not found");  // bot B cannot see bot A's chat
  const auto copied = h.call(kBotA, "copyMessage", {{"chat_id", 20}, {"from_chat_id", 10}, {"message_id", 1}});
  CHECK(copied.status == 200);
  CHECK(copied.body["result"] == json{{"message_id", 1}});
  const auto chat20 = h.server.messages(20);
  REQUIRE(chat20.size() == 1);
  CHECK(chat20[0].text == "final");
  CHECK(chat20[0].sender_id == 111111);
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

TEST_CASE("BotApiServer: per-chat limit takes a burst, then answers 429 like Telegram, with a Retry-After header") {
  Harness h({.overall = std::nullopt, .per_chat = sim::Rate{1, 1s}, .per_group = std::nullopt, .per_chat_burst = 3,
             .tolerance = 0ms});
  for (int i = 0; i < 3; ++i) CHECK(h.send_text(kBotA, 1).status == 200);  // a quiet chat takes 3 at once

  auto [ec, response] = send(h.client, net::HttpRequest::post_json(h.server.endpoint(), bot_target(kBotA, "sendMessage"),
                                                                   {{"chat_id", 1}, {"text", "again"}}));
  REQUIRE_FALSE(ec);
  CHECK(response.status == 429);
  CHECK(response.body == retry_after_body(1));
  CHECK(response.header("Retry-After") == "1");

  CHECK(h.send_text(kBotA, 2).status == 200);  // another chat is not limited
  CHECK(h.send_text(kBotB, 1).status == 200);  // nor is another token

  // After the burst: one per second.
  h.clock.advance(1s);
  CHECK(h.send_text(kBotA, 1).status == 200);
  CHECK(h.send_text(kBotA, 1).status == 429);
  h.clock.advance(1s);
  CHECK(h.send_text(kBotA, 1).status == 200);
  const auto stats = h.server.stats(kBotA);
  CHECK(stats.rate_limited == 2);
  CHECK(stats.sent_during_cooldown == 0);
}

TEST_CASE("BotApiServer: a request sent into a cooldown is told what is left, never more") {
  Harness h({.overall = std::nullopt, .per_chat = std::nullopt, .per_group = sim::Rate{20, 1min}, .tolerance = 0ms});
  for (int i = 0; i < 20; ++i) REQUIRE(h.send_text(kBotA, -100).status == 200);
  CHECK(h.send_text(kBotA, -100).body == json::parse(retry_after_body(60)));
  // 100 parallel-style sends into the cooldown: the wait never grows, whatever the client does.
  for (int i = 0; i < 100; ++i) {
    const auto limited = h.send_text(kBotA, -100);
    REQUIRE(limited.status == 429);
    CHECK(limited.body["parameters"]["retry_after"] == 60);
  }
  h.clock.advance(59'500ms);
  CHECK(h.send_text(kBotA, -100).body == json::parse(retry_after_body(1)));  // 0.5 s left, rounded up
  CHECK(h.server.stats(kBotA).sent_during_cooldown == 101);
  h.clock.advance(500ms);
  CHECK(h.send_text(kBotA, -100).status == 200);
}

TEST_CASE("BotApiServer: retry_after is bounded by the limit's period") {
  // A bucket refilled at 1/min that was overdrawn by the tolerance still asks for at most 60 s.
  Harness h({.overall = std::nullopt, .per_chat = sim::Rate{1, 1min}, .per_group = std::nullopt, .per_chat_burst = 1,
             .tolerance = 5s});
  CHECK(h.send_text(kBotA, 1).status == 200);
  h.clock.advance(56s);
  CHECK(h.send_text(kBotA, 1).status == 200);  // 4 s early: within the tolerance
  const auto limited = h.send_text(kBotA, 1);
  REQUIRE(limited.status == 429);
  CHECK(limited.body["parameters"]["retry_after"] == 60);
}

TEST_CASE("BotApiServer: a client that waits exactly retry_after is never counted as ignoring it") {
  Harness h({.overall = std::nullopt, .per_chat = sim::Rate{1, 1s}, .per_group = std::nullopt, .per_chat_burst = 1,
             .tolerance = 0ms});
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

TEST_CASE("Rate::parse") {  // the simulator's rates are the core's Rate (tests/core/rate_text_test.cpp)
  CHECK(sim::Rate::parse("30/s") == sim::Rate{30, 1s});
  CHECK(sim::Rate::parse("20/min") == sim::Rate{20, 1min});
  CHECK(sim::Rate::parse("5/250ms") == sim::Rate{5, 250ms});
  CHECK(sim::Rate::parse("100/h") == sim::Rate{100, 1h});
  CHECK(sim::Rate::parse("0/s").is_zero());  // a limit that admits nothing
  for (const char* bad : {"", "30", "-1/s", "3/fortnight", "x/s", "3/0s"}) {
    CHECK_THROWS_AS(sim::Rate::parse(bad), floodgate::Error);
  }
}

// ---- Per-bot worlds ----

TEST_CASE("BotApiServer: a bot writes only to users who started it, with Telegram's 403 texts") {
  Harness h;
  h.server.add_user(50, "Ann", "ann");
  h.server.start_bot(kBotA, 50);
  h.server.block_bot(kBotA, 51);
  CHECK(h.send_text(kBotA, 50).status == 200);
  const auto stranger = h.send_text(kBotB, 50);
  CHECK(stranger.status == 403);
  CHECK(stranger.body == json{{"ok", false},
                              {"error_code", 403},
                              {"description", "Forbidden: bot can't initiate conversation with a user"}});
  const auto blocked = h.send_text(kBotA, 51);
  CHECK(blocked.status == 403);
  CHECK(blocked.body["description"] == "Forbidden: bot was blocked by the user");
  CHECK(h.call(kBotB, "sendChatAction", {{"chat_id", 50}, {"action", "typing"}}).status == 403);
  CHECK(h.server.stats(kBotB).forbidden == 2);
  CHECK(h.server.messages(50).size() == 1);  // refused sends store nothing

  // The user writes to bot B: that starts it, and B may answer.
  h.server.push_message(kBotB, 50, "/start");
  CHECK(h.send_text(kBotB, 50).status == 200);
  // Unblocking is starting again.
  h.server.start_bot(kBotA, 51);
  CHECK(h.send_text(kBotA, 51).status == 200);
  // Undeclared users are the open world: everybody started everybody.
  CHECK(h.send_text(kBotB, 52).status == 200);
}

TEST_CASE("BotApiServer: groups have their members, a closed world does not know undeclared chats") {
  ManualClock clock;
  sim::BotApiServer server({.tokens = {kBotA, kBotB}, .limits = {std::nullopt, std::nullopt, std::nullopt},
                            .tls = false, .open_world = false},
                           clock);
  server.start();
  IoThread io;
  net::HttpsClient client(io.executor(), client_options_for(server));
  const auto send_text = [&](const Secret& token, std::int64_t chat) {
    return call_api(client, server, token, "sendMessage", {{"chat_id", chat}, {"text", "hi"}});
  };
  server.add_group(-1001234567890, sim::SimChatType::supergroup, "Team");
  server.add_member(kBotA, -1001234567890);
  server.add_group(-300, sim::SimChatType::channel, "News");
  server.kick_bot(kBotB, -300);

  const auto in_group = send_text(kBotA, -1001234567890);
  CHECK(in_group.status == 200);
  CHECK(in_group.body["result"]["chat"] == json{{"id", -1001234567890}, {"title", "Team"}, {"type", "supergroup"}});
  CHECK(send_text(kBotB, -1001234567890).body["description"] ==
        "Forbidden: bot is not a member of the supergroup chat");
  CHECK(send_text(kBotB, -300).body["description"] == "Forbidden: bot was kicked from the channel chat");
  CHECK(send_text(kBotA, 77).body == json{{"ok", false}, {"error_code", 400}, {"description", "Bad Request: chat not found"}});
  CHECK(send_text(kBotA, -77).body["description"] == "Bad Request: chat not found");
  // Group message ids are the group's: the next message of any bot follows.
  server.add_member(kBotB, -1001234567890);
  CHECK(send_text(kBotB, -1001234567890).body["result"]["message_id"] == 2);
}

TEST_CASE("BotApiServer: message ids of private chats count per bot") {
  Harness h;
  CHECK(h.send_text(kBotA, 60).body["result"]["message_id"] == 1);
  CHECK(h.send_text(kBotA, 60).body["result"]["message_id"] == 2);
  CHECK(h.send_text(kBotB, 60).body["result"]["message_id"] == 1);
  CHECK(h.server.messages(kBotA, 60).size() == 2);
  CHECK(h.server.messages(kBotB, 60).size() == 1);
  CHECK(h.server.messages(60).size() == 3);
}

TEST_CASE("BotApiServer: file ids belong to the bot that received them") {
  Harness h;
  const auto own = h.server.add_file(kBotA, "bytes of A", "a.txt");
  const auto file = h.call(kBotA, "getFile", {{"file_id", own}});
  REQUIRE(file.status == 200);
  CHECK(h.call(kBotB, "getFile", {{"file_id", own}}).body["description"] == "Bad Request: invalid file_id");
  CHECK(h.call(kBotB, "sendDocument", {{"chat_id", 1}, {"document", own}}).body["description"] ==
        "Bad Request: wrong file identifier/HTTP URL specified");
  CHECK(h.call(kBotA, "sendDocument", {{"chat_id", 1}, {"document", own}}).status == 200);

  const auto path = file.body["result"]["file_path"].get<std::string>();
  auto [ec, mine] = send(h.client, net::HttpRequest::get(h.server.endpoint(),
                                                         net::RequestTarget("/file/bot").append(kBotA).append("/" + path)));
  REQUIRE_FALSE(ec);
  CHECK(mine.body == "bytes of A");
  auto [ec2, theirs] = send(h.client, net::HttpRequest::get(h.server.endpoint(), net::RequestTarget("/file/bot")
                                                                                     .append(kBotB)
                                                                                     .append("/" + path)));
  REQUIRE_FALSE(ec2);
  CHECK(theirs.status == 404);
}

// ---- Uploads, downloads and paths as frameworks send them ----

TEST_CASE("BotApiServer: uploads named by attach://, downloads at a percent-encoded path") {
  Harness h;
  const std::string photo = std::string("\xFF\xD8\xFF\xE0", 4) + std::string(2000, '\0') + "\r\n--x";
  net::MultipartForm form;
  form.add_field("chat_id", "70").add_field("photo", "attach://file0").add_field("caption", "pic");
  form.add_file("file0", "pic.jpg", photo, "image/jpeg");
  auto [ec, response] =
      send(h.client, net::HttpRequest::post_form(h.server.endpoint(), bot_target(kBotA, "sendPhoto"), form));
  REQUIRE_FALSE(ec);
  const auto sent = json::parse(response.body);
  REQUIRE(sent["ok"] == true);
  CHECK(sent["result"]["caption"] == "pic");
  const auto& sizes = sent["result"]["photo"];
  REQUIRE(sizes.size() == 1);
  CHECK(sizes[0]["file_size"] == photo.size());

  const auto path = h.call(kBotA, "getFile", {{"file_id", sizes[0]["file_id"]}}).body["result"]["file_path"];
  // python-telegram-bot quotes the whole path: the token's ':' arrives as %3A.
  auto token = kBotA.reveal();
  token.replace(token.find(':'), 1, "%3A");
  auto [ec2, download] = send(h.client, net::HttpRequest::get(h.server.endpoint(),
                                                              net::RequestTarget("/file/bot" + token + "/" +
                                                                                 path.get<std::string>())));
  REQUIRE_FALSE(ec2);
  CHECK(download.status == 200);
  CHECK(download.body == photo);

  net::MultipartForm dangling;
  dangling.add_field("chat_id", "70").add_field("photo", "attach://missing");
  auto [ec3, refused] =
      send(h.client, net::HttpRequest::post_form(h.server.endpoint(), bot_target(kBotA, "sendPhoto"), dangling));
  REQUIRE_FALSE(ec3);
  CHECK(json::parse(refused.body)["description"] == "Bad Request: there is no photo in the request");
}

TEST_CASE("BotApiServer: every kind of media upload answers its own object") {
  Harness h;
  for (const std::string kind : {"video", "audio", "voice", "animation", "sticker", "document"}) {
    net::MultipartForm form;
    form.add_field("chat_id", "71").add_file(kind, kind + ".bin", "bytes of " + kind);
    const auto method = "send" + std::string(1, static_cast<char>(std::toupper(kind[0]))) + kind.substr(1);
    auto [ec, response] = send(h.client, net::HttpRequest::post_form(h.server.endpoint(), bot_target(kBotA, method), form));
    REQUIRE_FALSE(ec);
    const auto body = json::parse(response.body);
    INFO(kind << ": " << response.body);
    REQUIRE(body["ok"] == true);
    CHECK(body["result"][kind]["file_id"].is_string());
    CHECK(body["result"][kind]["file_size"] == ("bytes of " + kind).size());
  }
}

// ---- Texts: length and entities ----

TEST_CASE("BotApiServer: text length is counted in UTF-16 after entities, as Telegram does") {
  Harness h;
  CHECK(h.send_text(kBotA, 80, std::string(4096, 'x')).status == 200);
  const auto long_text = h.send_text(kBotA, 80, std::string(4097, 'x'));
  CHECK(long_text.body == json{{"ok", false}, {"error_code", 400}, {"description", "Bad Request: message is too long"}});
  std::string emoji;  // U+1F600 is two UTF-16 units
  for (int i = 0; i < 2049; ++i) emoji += "\xF0\x9F\x98\x80";
  CHECK(h.send_text(kBotA, 80, emoji).body["description"] == "Bad Request: message is too long");
  // Markup is not counted: 4096 characters in bold fit.
  CHECK(h.call(kBotA, "sendMessage", {{"chat_id", 80}, {"text", "<b>" + std::string(4096, 'y') + "</b>"}, {"parse_mode", "HTML"}})
            .status == 200);
  CHECK(h.call(kBotA, "sendMessage", {{"chat_id", 80}, {"text", "<b></b>"}, {"parse_mode", "HTML"}}).body["description"] ==
        "Bad Request: message text is empty");
  const std::string long_caption(1025, 'c');
  CHECK(h.call(kBotA, "sendDocument", {{"chat_id", 80}, {"document", h.server.add_file("d", "d.txt")}, {"caption", long_caption}})
            .body["description"] == "Bad Request: message caption is too long");
}

TEST_CASE("BotApiServer: malformed HTML and Markdown get Telegram's entity-parse errors") {
  Harness h;
  const auto parse = [&](std::string text, std::string mode) {
    const auto reply = h.call(kBotA, "sendMessage", {{"chat_id", 81}, {"text", std::move(text)}, {"parse_mode", std::move(mode)}});
    return reply.status == 200 ? reply.body["result"]["text"].get<std::string>() : reply.body["description"].get<std::string>();
  };
  CHECK(parse("<b>bold</b> &lt;tag&gt; &amp; <a href=\"https://x.y/?a=1&b=2\">link</a>", "HTML") == "bold <tag> & link");
  CHECK(parse("<b>bold", "HTML") ==
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"");
  CHECK(parse("a <blink>b</blink>", "HTML") ==
        "Bad Request: can't parse entities: Unsupported start tag \"blink\" at byte offset 2");
  CHECK(parse("<i>it</b>", "HTML") ==
        "Bad Request: can't parse entities: Unmatched end tag at byte offset 5, expected \"</i>\", found \"</b>\"");
  CHECK(parse("x</b>", "HTML") == "Bad Request: can't parse entities: Unexpected end tag at byte offset 1");
  CHECK(parse("*bold* _it_ __u__ ~s~ ||sp|| `c.d` [t](https://x.y) 1\\.5", "MarkdownV2") == "bold it u s sp c.d t 1.5");
  CHECK(parse("1.5", "MarkdownV2") ==
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'");
  CHECK(parse("*bold", "MarkdownV2") ==
        "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0");
  CHECK(parse("a `code", "MarkdownV2") ==
        "Bad Request: can't parse entities: Can't find end of Code entity at byte offset 2");
  CHECK(parse("*bold* and _it", "Markdown") ==
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 11");
  CHECK(parse("x", "Textile") == "Bad Request: unsupported parse_mode");
}

// ---- The methods frameworks call ----

TEST_CASE("BotApiServer: start-up and everyday methods of bot frameworks") {
  Harness h;
  h.server.push_message(kBotA, 90, "queued");
  CHECK(h.call(kBotA, "getWebhookInfo").body["result"] ==
        json{{"url", ""}, {"has_custom_certificate", false}, {"pending_update_count", 1}});
  CHECK(h.call(kBotA, "setWebhook", {{"url", "https://example.invalid/hook"}}).body["result"] == true);
  CHECK(h.call(kBotA, "getUpdates").status == 409);  // no polling while a webhook is set
  CHECK(h.call(kBotA, "deleteWebhook", {{"drop_pending_updates", true}}).body["result"] == true);
  CHECK(h.call(kBotA, "getUpdates").body["result"].empty());

  const json commands = json::array({{{"command", "start"}, {"description", "say hello"}}});
  CHECK(h.call(kBotA, "setMyCommands", {{"commands", commands.dump()}}).body["result"] == true);
  CHECK(h.call(kBotA, "getMyCommands").body["result"] == commands);
  CHECK(h.call(kBotA, "setMyCommands", {{"commands", "{}"}}).status == 400);

  CHECK(h.call(kBotA, "sendChatAction", {{"chat_id", 90}, {"action", "typing"}}).body["result"] == true);
  CHECK(h.call(kBotA, "sendChatAction", {{"chat_id", 90}, {"action", "dancing"}}).body["description"] ==
        "Bad Request: wrong parameter action in request");

  const json keyboard{{"inline_keyboard", json::array({json::array({{{"text", "ok"}, {"callback_data", "ok"}}})})}};
  const auto sent = h.call(kBotA, "sendMessage", {{"chat_id", 90}, {"text", "pick"}, {"reply_markup", keyboard.dump()}});
  CHECK(sent.body["result"]["reply_markup"] == keyboard);
  const auto id = sent.body["result"]["message_id"];
  const json other{{"inline_keyboard", json::array({json::array({{{"text", "no"}, {"callback_data", "no"}}})})}};
  CHECK(h.call(kBotA, "editMessageReplyMarkup", {{"chat_id", 90}, {"message_id", id}, {"reply_markup", other.dump()}})
            .body["result"]["reply_markup"] == other);
  CHECK(h.call(kBotA, "editMessageReplyMarkup", {{"chat_id", 90}, {"message_id", id}, {"reply_markup", other.dump()}})
            .body["description"]
            .get<std::string>()
            .starts_with("Bad Request: message is not modified"));
  CHECK(h.call(kBotA, "editMessageCaption", {{"chat_id", 90}, {"message_id", id}, {"caption", "c"}}).body["description"] ==
        "Bad Request: there is no caption in the message to edit");
  const auto doc = h.call(kBotA, "sendDocument", {{"chat_id", 90}, {"document", h.server.add_file("d", "d.txt")}});
  const auto doc_id = doc.body["result"]["message_id"];
  CHECK(h.call(kBotA, "editMessageCaption", {{"chat_id", 90}, {"message_id", doc_id}, {"caption", "new"}})
            .body["result"]["caption"] == "new");

  CHECK(h.call(kBotA, "deleteMessage", {{"chat_id", 90}, {"message_id", id}}).body["result"] == true);
  CHECK(h.call(kBotA, "deleteMessage", {{"chat_id", 90}, {"message_id", id}}).body["description"] ==
        "Bad Request: message to delete not found");

  const auto query_update = h.server.push_callback_query(kBotA, 90, "ok");
  const auto updates = h.call(kBotA, "getUpdates", {{"offset", query_update}}).body["result"];
  REQUIRE(updates.size() == 1);
  const auto query_id = updates[0]["callback_query"]["id"];
  CHECK(updates[0]["callback_query"]["data"] == "ok");
  CHECK(h.call(kBotA, "answerCallbackQuery", {{"callback_query_id", query_id}}).body["result"] == true);
  CHECK(h.call(kBotA, "answerCallbackQuery", {{"callback_query_id", query_id}}).body["description"] ==
        "Bad Request: query is too old and response timeout expired or query ID is invalid");

  h.server.add_user(91, "Ann", "ann");
  h.server.start_bot(kBotA, 91);
  CHECK(h.call(kBotA, "getChat", {{"chat_id", 91}}).body["result"] ==
        json{{"id", 91}, {"first_name", "Ann"}, {"username", "ann"}, {"type", "private"}});
  CHECK(h.call(kBotB, "getChat", {{"chat_id", 91}}).status == 403);  // B never met Ann
  const auto member = h.call(kBotA, "getChatMember", {{"chat_id", 91}, {"user_id", 91}}).body["result"];
  CHECK(member["status"] == "member");
  CHECK(member["user"]["first_name"] == "Ann");
}

// ---- Faults ----

TEST_CASE("BotApiServer: a fault for one method leaves the others alone, a cut-off reply was applied") {
  Harness h;
  h.server.inject(kBotA, sim::Fault::truncated_response().on("sendMessage"));
  CHECK(h.call(kBotA, "getMe").status == 200);  // not the method: untouched
  auto [ec, response] = send(h.client, net::HttpRequest::post_json(h.server.endpoint(), bot_target(kBotA, "sendMessage"),
                                                                   {{"chat_id", 95}, {"text", "applied"}}));
  CHECK(ec);  // the answer never arrived whole
  REQUIRE(h.server.messages(95).size() == 1);  // but the message was sent
  CHECK(h.server.stats(kBotA).faults == 1);
}

// ---- Scenarios ----

TEST_CASE("BotApiServer: apply_scenario sets up bots, users, groups, updates and faults") {
  Harness h;
  h.server.apply_scenario(json::parse(R"({
    "bots": [{"token": "333333:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", "username": "gamma_bot",
              "limits": {"per_chat": "1/min", "per_chat_burst": 1, "tolerance_ms": 0}}],
    "users": [{"id": 100, "first_name": "Ann", "started": ["gamma_bot", 111111], "blocked": ["222222:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"]}],
    "groups": [{"id": -7, "title": "Old", "members": ["gamma_bot"], "migrated_to": -1000000000007}],
    "updates": [{"bot": "gamma_bot", "message": {"chat_id": 100, "text": "/start"}}],
    "faults": [{"bot": "gamma_bot", "kind": "server_error", "status": 503, "method": "getMe", "times": 2}]
  })"));
  const Secret gamma("333333:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC");
  CHECK(h.call(gamma, "getMe").status == 503);
  CHECK(h.call(gamma, "getMe").status == 503);
  CHECK(h.call(gamma, "getMe").body["result"]["username"] == "gamma_bot");
  CHECK(h.call(gamma, "getUpdates").body["result"][0]["message"]["from"]["first_name"] == "Ann");
  CHECK(h.send_text(kBotA, 100).status == 200);
  CHECK(h.send_text(kBotB, 100).body["description"] == "Forbidden: bot was blocked by the user");
  CHECK(h.send_text(gamma, 100).status == 200);
  CHECK(h.send_text(gamma, 100).body["parameters"]["retry_after"] == 60);  // its own limits
  CHECK(h.send_text(gamma, -7).body["parameters"]["migrate_to_chat_id"] == -1000000000007);
  CHECK(h.send_text(gamma, -1000000000007).status == 200);  // the supergroup kept the group's bots
}

TEST_CASE("BotApiServer: a bad scenario names the entry and applies nothing") {
  Harness h;
  const auto rejects = [&](const char* text, const std::string& message) {
    try {
      h.server.apply_scenario(json::parse(text));
      FAIL("accepted: " << text);
    } catch (const floodgate::Error& e) {
      CHECK_THAT(e.what(), Catch::Matchers::Contains(message));
    }
  };
  rejects(R"({"users": [{"id": 5, "started": ["nobody_bot"]}]})", "users[0].started: no bot \"nobody_bot\"");
  rejects(R"({"groups": [{"id": 5}]})", "groups[0]: a group id is negative");
  rejects(R"({"faults": [{"bot": 111111, "kind": "meteor"}]})", "faults[0]: unknown fault kind \"meteor\"");
  rejects(R"({"limits": {"per_chat": "fast"}})", "limits.per_chat");
  rejects(R"({"colour": "blue"})", "unknown field \"colour\"");
  rejects(R"({"open_world": false, "users": [{"id": -1}]})", "users[0]: a user id is positive");
  CHECK(h.send_text(kBotA, 1).status == 200);  // the rejected open_world=false was not applied
}
