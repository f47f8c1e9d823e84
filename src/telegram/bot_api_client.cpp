#include "floodgate/telegram/bot_api_client.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/async/detail/associations.hpp"
#include "floodgate/async/detail/post_completion.hpp"

namespace floodgate::telegram {

namespace {

class BotApiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "telegram.bot_api"; }
  std::string message(int code) const override {
    switch (code) {
      case 400: return "Telegram Bot API: bad request";
      case 401: return "Telegram Bot API: unauthorized (token revoked or wrong)";
      case 403: return "Telegram Bot API: forbidden";
      case 404: return "Telegram Bot API: not found";
      case 409: return "Telegram Bot API: conflict";
      case 429: return "Telegram Bot API: too many requests";
    }
    if (code >= 500) return fmt::format("Telegram Bot API: server error {}", code);
    return fmt::format("Telegram Bot API: error {}", code);
  }
};

// The envelope's optional fields, read leniently: a wrong type is ignored
// rather than trusted, since Telegram never sends one.
template <class T>
std::optional<T> optional_field(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end()) return std::nullopt;
  if constexpr (std::is_same_v<T, std::string>) {
    if (it->is_string()) return it->template get<std::string>();
  } else {
    if (it->is_number_integer()) return it->template get<T>();
  }
  return std::nullopt;
}

BotApiResponse malformed(int http_status) {
  BotApiResponse response;
  response.http_status = http_status;
  response.transport = make_error_code(errc::malformed_response);
  return response;
}

}  // namespace

const std::error_category& bot_api_category() noexcept {
  static const BotApiCategory instance;
  return instance;
}

std::error_code BotApiResponse::error_code() const noexcept {
  if (transport) return transport;
  if (error) return {error->code, bot_api_category()};
  return {};
}

std::string BotApiResponse::describe() const {
  if (transport) return fmt::format("{} (HTTP {})", transport.message(), http_status);
  if (error) return fmt::format("{} {}", error->code, error->description);
  return "ok";
}

BotApiResponse decode_bot_api_response(int http_status, std::string_view body) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return malformed(http_status);
  const auto ok = json.find("ok");
  if (ok == json.end() || !ok->is_boolean()) return malformed(http_status);

  BotApiResponse response;
  response.http_status = http_status;
  if (ok->get<bool>()) {
    if (auto result = json.find("result"); result != json.end()) response.result = std::move(*result);
    return response;
  }
  BotApiError error;
  error.code = optional_field<int>(json, "error_code").value_or(http_status);
  error.description = optional_field<std::string>(json, "description").value_or("");
  if (const auto parameters = json.find("parameters"); parameters != json.end() && parameters->is_object()) {
    if (auto seconds = optional_field<std::int64_t>(*parameters, "retry_after"); seconds && *seconds >= 0) {
      error.retry_after = clamp_server_wait(*seconds);
    }
    error.migrate_to_chat_id = optional_field<std::int64_t>(*parameters, "migrate_to_chat_id");
  }
  response.error = std::move(error);
  return response;
}

Outcome<nlohmann::json> classify(BotApiResponse response, bool addressed_to_chat) {
  using Result = Outcome<nlohmann::json>;
  if (response.transport) {
    // A body that is not a Bot API answer came from a server that had the request.
    if (response.transport == errc::malformed_response) return Result::maybe_applied(response.describe());
    return net::failure_outcome<nlohmann::json>(response.transport, response.describe());
  }
  if (!response.error) return Result::success(std::move(response.result));
  const BotApiError& error = *response.error;
  if (error.code == 429) {
    return Result::flood_wait(error.retry_after.value_or(std::chrono::seconds(1)),
                              addressed_to_chat ? CooldownScope::destination : CooldownScope::credential,
                              error.description);
  }
  if (error.code == 401) return Result::auth_failed(error.description);
  if (error.code >= 500) return Result::maybe_applied(error.description);
  return Result::rejected(error.description);
}

std::optional<Message> Message::from_json(const nlohmann::json& json) {
  if (!json.is_object()) return std::nullopt;
  const auto chat = json.find("chat");
  const auto id = optional_field<std::int64_t>(json, "message_id");
  if (!id || chat == json.end() || !chat->is_object()) return std::nullopt;
  const auto chat_id = optional_field<std::int64_t>(*chat, "id");
  if (!chat_id) return std::nullopt;
  Message message{*id, *chat_id, {}, {}};
  message.text = optional_field<std::string>(json, "text")
                     .value_or(optional_field<std::string>(json, "caption").value_or(""));
  if (const auto document = json.find("document"); document != json.end() && document->is_object()) {
    message.document_file_id = optional_field<std::string>(*document, "file_id");
  }
  for (const char* kind : {"document", "video", "audio", "voice", "animation", "sticker"}) {
    if (const auto media = json.find(kind); media != json.end() && media->is_object()) {
      message.file_id = optional_field<std::string>(*media, "file_id");
    }
  }
  if (const auto photo = json.find("photo"); photo != json.end() && photo->is_array() && !photo->empty() &&
                                             photo->back().is_object()) {
    message.file_id = optional_field<std::string>(photo->back(), "file_id");  // sizes grow: the last is largest
  }
  return message;
}

nlohmann::json SendMessageParams::to_json() const {
  nlohmann::json json = extra.is_object() ? extra : nlohmann::json::object();
  json["chat_id"] = chat_id;
  json["text"] = text;
  if (parse_mode) json["parse_mode"] = *parse_mode;
  return json;
}

nlohmann::json EditMessageTextParams::to_json() const {
  nlohmann::json json{{"chat_id", chat_id}, {"message_id", message_id}, {"text", text}};
  if (parse_mode) json["parse_mode"] = *parse_mode;
  return json;
}

nlohmann::json CopyMessageParams::to_json() const {
  return {{"chat_id", chat_id}, {"from_chat_id", from_chat_id}, {"message_id", message_id}};
}

std::string_view to_string(MediaKind kind) noexcept {
  switch (kind) {
    case MediaKind::photo: return "photo";
    case MediaKind::video: return "video";
    case MediaKind::audio: return "audio";
    case MediaKind::voice: return "voice";
    case MediaKind::animation: return "animation";
    case MediaKind::sticker: return "sticker";
    case MediaKind::document: break;
  }
  return "document";
}

std::string SendMediaParams::method() const {
  std::string name(to_string(kind));
  name.front() = static_cast<char>(std::toupper(static_cast<unsigned char>(name.front())));
  return "send" + name;
}

net::MultipartForm SendMediaParams::to_form() const {
  net::MultipartForm form;
  form.add_field("chat_id", std::to_string(chat_id));
  if (!caption.empty()) form.add_field("caption", caption);
  if (extra.is_object()) {
    for (const auto& [name, value] : extra.items()) {
      form.add_field(name, value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  const std::string field(to_string(kind));
  if (const auto* bytes = std::get_if<std::string>(&content)) {
    form.add_file(field, file_name, *bytes);
  } else if (const auto* path = std::get_if<std::filesystem::path>(&content)) {
    form.add_file_from_path(field, *path, "application/octet-stream", file_name);
  } else {
    form.add_field(field, std::get<FileId>(content).id);
  }
  return form;
}

std::string SendMediaGroupParams::problem() const {
  if (media.size() < 2 || media.size() > 10) {
    return fmt::format("a media group has 2 to 10 items, not {}", media.size());
  }
  std::size_t documents = 0, audio = 0;
  for (const auto& item : media) {
    switch (item.kind) {
      case MediaKind::photo:
      case MediaKind::video: break;
      case MediaKind::document: ++documents; break;
      case MediaKind::audio: ++audio; break;
      default: return fmt::format("a {} cannot be sent in a media group", to_string(item.kind));
    }
  }
  if (documents > 0 && documents < media.size()) return "documents can be grouped only with documents";
  if (audio > 0 && audio < media.size()) return "audio files can be grouped only with audio files";
  return {};
}

bool SendMediaGroupParams::uses_file_ids() const {
  return std::any_of(media.begin(), media.end(),
                     [](const MediaGroupItem& item) { return std::holds_alternative<FileId>(item.content); });
}

net::MultipartForm SendMediaGroupParams::to_form() const {
  net::MultipartForm form;
  form.add_field("chat_id", std::to_string(chat_id));
  if (extra.is_object()) {
    for (const auto& [name, value] : extra.items()) {
      form.add_field(name, value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  auto items = nlohmann::json::array();
  for (std::size_t i = 0; i < media.size(); ++i) {
    const auto& item = media[i];
    nlohmann::json input = item.extra.is_object() ? item.extra : nlohmann::json::object();
    input["type"] = to_string(item.kind);
    if (!item.caption.empty()) input["caption"] = item.caption;
    if (const auto* id = std::get_if<FileId>(&item.content)) {
      input["media"] = id->id;
    } else {
      input["media"] = fmt::format("attach://file{}", i);
    }
    items.push_back(std::move(input));
  }
  form.add_field("media", items.dump());
  for (std::size_t i = 0; i < media.size(); ++i) {
    const auto& item = media[i];
    const auto part = fmt::format("file{}", i);
    if (const auto* bytes = std::get_if<std::string>(&item.content)) {
      form.add_file(part, item.file_name, *bytes);
    } else if (const auto* path = std::get_if<std::filesystem::path>(&item.content)) {
      form.add_file_from_path(part, *path, "application/octet-stream", item.file_name);
    }
  }
  return form;
}

BotApiClient::BotApiClient(net::HttpsClient& http, net::Endpoint endpoint, Secret token)
    : http_(&http), endpoint_(std::move(endpoint)), token_(std::move(token)) {}

net::RequestTarget BotApiClient::method_target(std::string_view method) const {
  net::RequestTarget target("/bot");
  target.append(token_).append("/" + std::string(method));
  return target;
}

net::HttpRequest BotApiClient::make_json_request(std::string_view method, const nlohmann::json& params) const {
  // `{}` as an argument is JSON null: a method without parameters gets an empty object.
  // (Two calls rather than `?:`, which would copy `params`.)
  if (params.is_null()) return net::HttpRequest::post_json(endpoint_, method_target(method), nlohmann::json::object());
  auto request = net::HttpRequest::post_json(endpoint_, method_target(method), params);
  // A long poll is silent for up to its `timeout`: the read timeout must outlast it.
  const auto timeout = params.find("timeout");
  if (timeout != params.end() && timeout->is_number_integer() && timeout->get<std::int64_t>() > 0 &&
      method.size() == 10 && std::equal(method.begin(), method.end(), "getupdates", [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == b;
      })) {
    const auto seconds = std::chrono::seconds(std::min<std::int64_t>(timeout->get<std::int64_t>(), 50));
    request.read_timeout = seconds + std::chrono::seconds(15);
    request.total_timeout = seconds + std::chrono::seconds(60);
  }
  return request;
}

net::HttpRequest BotApiClient::make_form_request(std::string_view method, net::MultipartForm form) const {
  return net::HttpRequest::post_form(endpoint_, method_target(method), std::move(form));
}

net::HttpRequest BotApiClient::make_download_request(const std::string& file_path,
                                                     std::filesystem::path destination) const {
  net::RequestTarget target("/file/bot");
  target.append(token_).append("/" + file_path);
  auto request = net::HttpRequest::get(endpoint_, std::move(target));
  request.download_to = std::move(destination);
  return request;
}

void BotApiClient::start(net::HttpsClient& http, net::HttpRequest request,
                         boost::asio::any_completion_handler<Signature> handler) {
  auto target = request.target;  // shares its parts: redacted only for a failure's log line
  // The HTTP client completes on the executor bound here, never inside this
  // call, so the decoded response can go straight to the handler: a second
  // post would only cost a queue round trip.
  // The caller's cancellation slot goes to the HTTP request with it.
  const auto associated = async::detail::associations_of(handler, http.get_executor());
  auto step = associated.wrap([target = std::move(target), handler = std::move(handler)](
                                  std::error_code ec, const net::HttpResponse& http_response) mutable {
    BotApiResponse response;
    if (ec) {
      response.transport = ec;
    } else {
      response = decode_bot_api_response(http_response.status, http_response.body);
    }
    if (!response.ok()) log(LogLevel::debug, "Bot API {}: {}", target, response.describe());
    const auto code = response.error_code();
    std::move(handler)(code, std::move(response));
  });
  http.async_request(std::move(request), std::move(step));
}

void BotApiClient::start_download(net::HttpsClient& http, net::HttpRequest request,
                                  boost::asio::any_completion_handler<DownloadSignature> handler) {
  auto io = http.get_executor();
  const auto slot = boost::asio::get_associated_cancellation_slot(handler);
  http.async_request(std::move(request), boost::asio::bind_cancellation_slot(slot, [io, handler = std::move(handler)](
                                             std::error_code ec, const net::HttpResponse& http_response) mutable {
    if (!ec && !http_response.is_success()) {
      // A failed download answers with a Bot API envelope in memory.
      const auto response = decode_bot_api_response(http_response.status, http_response.body);
      ec = response.error ? std::error_code(response.error->code, bot_api_category())
                          : std::error_code(http_response.status, bot_api_category());
    }
    const std::uint64_t bytes = ec ? 0 : http_response.body_bytes;
    async::detail::post_completion(io, std::move(handler), ec, bytes);
  }));
}

}  // namespace floodgate::telegram
