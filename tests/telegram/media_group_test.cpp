// sendMediaGroup: the simulator answers it as Telegram does (exact error
// texts of telegram-bot-api and TDLib), and BotPool sends groups from bytes,
// files streamed from disk and file ids (those only through their owner).
#include <catch2/catch.hpp>

#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../net/net_test_support.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "test_support.hpp"

using floodgate::Secret;
using floodgate::errc;
using floodgate::sim::BotApiServer;
using floodgate::telegram::BotPool;
using floodgate::telegram::FileId;
using floodgate::telegram::MediaGroupItem;
using floodgate::telegram::MediaKind;
using floodgate::telegram::SendMediaGroupParams;
namespace asio = boost::asio;

namespace {

const std::string kAlpha = "300001:AAHmedia-token-alpha";
const std::string kBravo = "300002:AAHmedia-token-bravo";

struct MediaSim {
  MediaSim()
      : server({.tokens = {Secret(kAlpha), Secret(kBravo)},
                .limits = {.overall = std::nullopt, .per_chat = std::nullopt, .per_group = std::nullopt}}) {
    server.start();
    http.emplace(io.executor(), floodgate::test::client_options_for(server));
    bots.emplace(io.executor(), *http,
                 std::vector<floodgate::Credential<floodgate::BotToken>>{{"alpha", {Secret(kAlpha)}},
                                                                        {"bravo", {Secret(kBravo)}}},
                 floodgate::telegram::BotPoolOptions{.endpoint = server.endpoint()});
  }
  ~MediaSim() {
    bots.reset();
    server.stop();
  }
  /// sendMediaGroup as a raw multipart request: `media` as given, plus parts.
  floodgate::test::ApiReply raw(const std::string& media, const std::vector<std::pair<std::string, std::string>>& parts = {}) {
    floodgate::net::MultipartForm form;
    form.add_field("chat_id", "42");
    form.add_field("media", media);
    for (const auto& [name, bytes] : parts) form.add_file(name, name + ".bin", bytes);
    auto [ec, response] = floodgate::test::send(
        *http, floodgate::net::HttpRequest::post_form(server.endpoint(),
                                                      floodgate::test::bot_target(Secret(kAlpha), "sendMediaGroup"),
                                                      std::move(form)));
    REQUIRE_FALSE(ec);
    return {response.status, nlohmann::json::parse(response.body)};
  }

  BotApiServer server;
  floodgate::test::IoThread io;
  std::optional<floodgate::net::HttpsClient> http;
  std::optional<BotPool> bots;
};

std::string description(const floodgate::test::ApiReply& reply) { return reply.body.value("description", ""); }

}  // namespace

TEST_CASE("Bot API simulator: sendMediaGroup refuses what Telegram refuses, with Telegram's words") {
  MediaSim sim;
  const std::vector<std::pair<std::string, std::string>> two = {{"a", "AAA"}, {"b", "BBB"}};
  CHECK(description(sim.raw("")) == "Bad Request: parameter \"media\" is required");
  CHECK(description(sim.raw("{oops")) == "Bad Request: can't parse media JSON object");
  CHECK(description(sim.raw(R"({"type":"photo"})")) == "Bad Request: expected an Array of InputMedia");
  CHECK(description(sim.raw("[]")) == "Bad Request: there are no messages to send");
  CHECK(description(sim.raw("[1]")) == "Bad Request: can't parse InputMedia: expected an Object");
  CHECK(description(sim.raw(R"([{"type":"photo","media":"attach://missing"}])", two)) ==
        "Bad Request: can't parse InputMedia: media not found");
  CHECK(description(sim.raw(R"([{"type":"animation","media":"attach://a"}])", two)) ==
        "Bad Request: can't parse InputMedia: type \"animation\" can't be used in sendMediaGroup");
  CHECK(description(sim.raw(R"([{"type":"sticker","media":"attach://a"}])", two)) ==
        "Bad Request: can't parse InputMedia: type \"sticker\" is unsupported");
  CHECK(description(sim.raw(R"([{"type":"photo","media":"attach://a"},{"type":"document","media":"attach://b"}])",
                            two)) == "Bad Request: document can't be mixed with other media types");
  CHECK(description(sim.raw(R"([{"type":"audio","media":"attach://a"},{"type":"video","media":"attach://b"}])",
                            two)) == "Bad Request: audio can't be mixed with other media types");
  auto eleven = nlohmann::json::array();
  for (int i = 0; i < 11; ++i) eleven.push_back({{"type", "photo"}, {"media", "attach://a"}});
  CHECK(description(sim.raw(eleven.dump(), two)) == "Bad Request: too many messages to send as an album");
  const auto others = sim.server.add_file(Secret(kBravo), "bravo's", "b.jpg");  // bravo's file id
  CHECK(description(sim.raw(nlohmann::json::array({{{"type", "photo"}, {"media", others}},
                                                   {{"type", "photo"}, {"media", "attach://a"}}})
                                .dump(),
                            two)) == "Bad Request: wrong file identifier/HTTP URL specified");
  CHECK(sim.server.messages(42).empty());  // a refused album sends nothing

  // Photos and videos mix; the answer is an array of Messages of one album.
  const auto album = sim.raw(
      R"([{"type":"photo","media":"attach://a","caption":"first"},{"type":"video","media":"attach://b"}])", two);
  REQUIRE(album.status == 200);
  REQUIRE(album.body["result"].size() == 2);
  CHECK(album.body["result"][0]["caption"] == "first");
  CHECK(album.body["result"][0].contains("photo"));
  CHECK(album.body["result"][1].contains("video"));
  CHECK(album.body["result"][0]["media_group_id"] == album.body["result"][1]["media_group_id"]);
  // One item is sent as a single message, outside any album.
  const auto single = sim.raw(R"([{"type":"document","media":"attach://a"}])", two);
  REQUIRE(single.body["result"].size() == 1);
  CHECK_FALSE(single.body["result"][0].contains("media_group_id"));
}

TEST_CASE("BotPool: a media group from bytes and a file streamed from disk, then again by file id through its owner") {
  floodgate::test::TempRoot root;
  std::filesystem::create_directories(root.base);
  const auto clip = root.base / "clip.mp4";
  std::ofstream(clip, std::ios::binary) << std::string(300000, 'v');
  MediaSim sim;
  SendMediaGroupParams group{.chat_id = 42,
                             .media = {{.kind = MediaKind::photo, .file_name = "a.jpg", .content = std::string("jpeg bytes"),
                                        .caption = "the photo"},
                                       {.kind = MediaKind::video, .file_name = "clip.mp4", .content = clip}}};
  auto [ec, sent] = sim.bots->async_send_media_group(group, asio::use_future).get();
  REQUIRE_FALSE(ec);
  REQUIRE(sent.result.is_array());
  REQUIRE(sent.result.size() == 2);
  const auto owner = sent.token_id;
  const auto messages = sim.server.messages(42);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].media == "photo");
  CHECK(messages[0].text == "the photo");
  CHECK(messages[1].media == "video");
  const auto photo_id = sent.result[0]["photo"][0]["file_id"].get<std::string>();
  const auto video_id = sent.result[1]["video"]["file_id"].get<std::string>();

  // File ids: only through the bot that owns them, never moved to another.
  SendMediaGroupParams again{.chat_id = 42,
                             .media = {{.kind = MediaKind::photo, .content = FileId{photo_id}},
                                       {.kind = MediaKind::video, .content = FileId{video_id}}}};
  auto [refused, why] = sim.bots->async_send_media_group(again, asio::use_future).get();
  CHECK(refused == errc::bad_request);
  CHECK(why.description.find("async_send_media_group_as") != std::string::npos);
  auto [resent_ec, resent] = sim.bots->async_send_media_group_as(owner, again, asio::use_future).get();
  REQUIRE_FALSE(resent_ec);
  CHECK(resent.token_id == owner);
  CHECK(resent.result[0]["photo"][0]["file_id"] == photo_id);
  // The other bot cannot use them: Telegram's answer, not a guess.
  const auto other = owner == "alpha" ? "bravo" : "alpha";
  auto [wrong_ec, wrong] = sim.bots->async_send_media_group_as(other, again, asio::use_future).get();
  CHECK(wrong_ec == errc::bad_request);
  CHECK(wrong.description == "Bad Request: wrong file identifier/HTTP URL specified");
}

TEST_CASE("BotPool: media groups Telegram's rules refuse end at once, unsent") {
  MediaSim sim;
  auto send = [&](SendMediaGroupParams params) {
    return sim.bots->async_send_media_group(std::move(params), asio::use_future).get();
  };
  const MediaGroupItem photo{.kind = MediaKind::photo, .file_name = "p.jpg", .content = std::string("p")};
  const MediaGroupItem document{.kind = MediaKind::document, .file_name = "d.txt", .content = std::string("d")};
  const MediaGroupItem audio{.kind = MediaKind::audio, .file_name = "a.mp3", .content = std::string("a")};
  const MediaGroupItem voice{.kind = MediaKind::voice, .file_name = "v.ogg", .content = std::string("v")};
  auto [one_ec, one] = send({.chat_id = 42, .media = {photo}});
  CHECK(one_ec == errc::bad_request);
  CHECK(one.description == "a media group has 2 to 10 items, not 1");
  auto [eleven_ec, eleven] = send({.chat_id = 42, .media = std::vector<MediaGroupItem>(11, photo)});
  CHECK(eleven.description == "a media group has 2 to 10 items, not 11");
  auto [mixed_ec, mixed] = send({.chat_id = 42, .media = {photo, document}});
  CHECK(mixed.description == "documents can be grouped only with documents");
  auto [audio_ec, with_audio] = send({.chat_id = 42, .media = {audio, photo}});
  CHECK(with_audio.description == "audio files can be grouped only with audio files");
  auto [voice_ec, with_voice] = send({.chat_id = 42, .media = {voice, voice}});
  CHECK(with_voice.description == "a voice cannot be sent in a media group");
  CHECK(sim.server.stats(Secret(kAlpha)).requests + sim.server.stats(Secret(kBravo)).requests == 0);
  // Documents with documents and audio with audio are fine.
  auto [docs_ec, docs] = send({.chat_id = 42, .media = {document, document}});
  CHECK_FALSE(docs_ec);
  auto [tracks_ec, tracks] = send({.chat_id = 42, .media = {audio, audio, audio}});
  CHECK_FALSE(tracks_ec);
  CHECK(tracks.result.size() == 3);
}
