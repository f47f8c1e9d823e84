// floodgate/telegram/bot_api_client.hpp: one Telegram bot token, one Bot API endpoint.
//
// `BotApiClient` calls Bot API methods over a shared keep-alive
// `net::HttpsClient` and decodes Telegram's envelope
// (`{"ok":true,"result":…}` or `{"ok":false,"error_code":…,"description":…,
// "parameters":{…}}`) into a `BotApiResponse`. No exceptions: every call
// completes exactly once with `void(std::error_code, BotApiResponse)`, where
// the error is
//
//   {}                                 ok:true, `response.result` holds the result
//   bot_api_category(), value = code   ok:false; `response.error` has the details
//                                      (429 with retry_after, 400 with migrate_to_chat_id…)
//   floodgate::errc::malformed_response  the body is not a Bot API envelope
//   floodgate::net::errc::…            no complete HTTP response (timeout, closed…)
//
//   floodgate::telegram::BotApiClient bot(http, endpoint, floodgate::Secret(token));
//   bot.async_send_message({.chat_id = 42, .text = "hi"}, [](std::error_code ec, BotApiResponse r) {
//     if (!ec) use(floodgate::telegram::Message::from_json(r.result));
//     else if (r.error && r.error->retry_after) wait(*r.error->retry_after);
//   });
//
// The token goes on the wire only: request targets redact it, and no error
// text or log line of this client contains it. `classify` turns a response
// into the retry executor's vocabulary (see core/retry_policy.hpp); BotPool
// (bot_pool.hpp) uses it to rotate many tokens.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "floodgate/core/outcome.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/net/http_client.hpp"

namespace floodgate::telegram {

/// The error category of Bot API `ok:false` answers; the value is Telegram's
/// `error_code` (400, 401, 403, 429, 5xx…).
const std::error_category& bot_api_category() noexcept;

/// Telegram's `ok:false` answer, decoded.
struct BotApiError {
  int code = 0;                                     ///< `error_code` (the HTTP status if absent)
  std::string description;                          ///< Telegram's words, e.g. "Bad Request: chat not found"
  std::optional<std::chrono::seconds> retry_after;  ///< `parameters.retry_after` (429)
  std::optional<std::int64_t> migrate_to_chat_id;   ///< `parameters.migrate_to_chat_id` (group upgraded)
};

/// One call's result. `transport` is set when no Bot API envelope was
/// received (network failure or a body that is not one); otherwise exactly
/// one of `result` (ok:true) and `error` (ok:false) is meaningful.
struct BotApiResponse {
  std::error_code transport;
  int http_status = 0;
  nlohmann::json result;
  std::optional<BotApiError> error;

  bool ok() const noexcept { return !transport && !error; }
  /// The completion's error code: {} on success, see the header comment otherwise.
  std::error_code error_code() const noexcept;
  /// A one-line description for logs and errors (never contains the token).
  std::string describe() const;
};

/// Decodes an HTTP response into a BotApiResponse: a body that is not JSON,
/// or JSON without a boolean "ok", gives transport = errc::malformed_response.
BotApiResponse decode_bot_api_response(int http_status, std::string_view body);

/// What a response means (core/outcome.hpp):
///   ok                         -> success(result)
///   429                        -> flood_wait(retry_after, scope)
///   401                        -> auth_failed (the token is revoked or wrong)
///   5xx                        -> maybe_applied (the server may have acted before failing)
///   malformed body             -> maybe_applied (a proxy's error page, a cut body)
///   network failure            -> net::outcome_kind_of: not_sent before the request was
///                                 written, maybe_applied after, rejected for a bad certificate
///   anything else (400, 403…)  -> rejected (errc::bad_request)
/// Scope rule for 429: Telegram's answer does not say which limit was hit.
/// A call addressed to a chat (`addressed_to_chat`) is cooled for that chat
/// only, because the overall per-token limit (30/s) is kept locally by the
/// token's LimitSet before sending, so a 429 that still arrives for a chat
/// call is the per-chat or per-group limit; a call without a chat cools the
/// whole token. A 429 without retry_after is a 1 s flood wait. Pass the
/// response as an rvalue when done with it: its result moves into the outcome.
Outcome<nlohmann::json> classify(BotApiResponse response, bool addressed_to_chat);

/// The fields of a Bot API Message that floodgate's callers use.
struct Message {
  std::int64_t message_id = 0;
  std::int64_t chat_id = 0;
  std::string text;  ///< text or caption
  std::optional<std::string> document_file_id;
  /// The file_id of the message's media of any kind (a photo's largest size);
  /// it belongs to the bot that sent or received the message.
  std::optional<std::string> file_id;

  /// Nothing if `json` is not a Message (no message_id or chat.id).
  static std::optional<Message> from_json(const nlohmann::json& json);
};

struct SendMessageParams {
  std::int64_t chat_id = 0;
  std::string text;
  std::optional<std::string> parse_mode;  ///< "HTML", "MarkdownV2"
  nlohmann::json extra = nlohmann::json::object();  ///< any other sendMessage parameter
  nlohmann::json to_json() const;
};

struct EditMessageTextParams {
  std::int64_t chat_id = 0;
  std::int64_t message_id = 0;
  std::string text;
  std::optional<std::string> parse_mode;
  nlohmann::json to_json() const;
};

struct CopyMessageParams {
  std::int64_t chat_id = 0;
  std::int64_t from_chat_id = 0;
  std::int64_t message_id = 0;
  nlohmann::json to_json() const;
};

/// The media a send method carries: sendPhoto, sendVideo, … sendDocument.
enum class MediaKind { photo, video, audio, voice, animation, sticker, document };
/// "photo", "video", … "document": the send method's field for its file, and
/// the kind's name in a Message.
std::string_view to_string(MediaKind kind) noexcept;

/// A file Telegram already has, named by the file_id one bot received with it.
/// Only that bot may use it (BotPool: `async_send_media_as`).
struct FileId {
  std::string id;
};

/// send<Kind>: the file comes from memory (`std::string` bytes), is streamed
/// from a path without being read into memory, or is a `FileId`.
struct SendMediaParams {
  std::int64_t chat_id = 0;
  std::string file_name;
  std::variant<std::string, std::filesystem::path, FileId> content;
  std::string caption;
  MediaKind kind = MediaKind::document;
  nlohmann::json extra = nlohmann::json::object();  ///< any other parameter of the method (parse_mode, duration…)

  /// "sendPhoto", "sendVideo", … "sendDocument".
  std::string method() const;
  net::MultipartForm to_form() const;
};
/// sendDocument's parameters (SendMediaParams with its default kind).
using SendDocumentParams = SendMediaParams;

/// One InputMedia of a media group: a photo, video, document or audio file
/// from bytes, streamed from a path (sent as `attach://<part>`), or a `FileId`.
struct MediaGroupItem {
  MediaKind kind = MediaKind::photo;
  std::string file_name;
  std::variant<std::string, std::filesystem::path, FileId> content;
  std::string caption;
  nlohmann::json extra = nlohmann::json::object();  ///< other InputMedia fields (parse_mode, has_spoiler…)
};

/// sendMediaGroup: 2..10 items, shown as one album. As Telegram requires,
/// photos and videos may be mixed, documents are grouped only with documents
/// and audio files only with audio files; other kinds cannot be grouped.
struct SendMediaGroupParams {
  std::int64_t chat_id = 0;
  std::vector<MediaGroupItem> media;
  nlohmann::json extra = nlohmann::json::object();  ///< other parameters (disable_notification, reply_parameters…)

  /// Why Telegram's rules refuse this group, or empty when they allow it.
  std::string problem() const;
  /// Whether an item is a `FileId` (which binds the group to the bot that owns it).
  bool uses_file_ids() const;
  /// The request: "media" (a JSON array naming uploads as attach://file<N>) and the file parts, streamed.
  net::MultipartForm to_form() const;
};

class BotApiClient {
 public:
  using Signature = void(std::error_code, BotApiResponse);
  using DownloadSignature = void(std::error_code, std::uint64_t bytes);

  /// `http` must outlive the client; many clients may share it (and its connections).
  BotApiClient(net::HttpsClient& http, net::Endpoint endpoint, Secret token);

  /// Calls `method` with JSON parameters.
  template <class CompletionToken>
  auto async_call(std::string_view method, const nlohmann::json& params, CompletionToken&& token) {
    return async_send(make_json_request(method, params), std::forward<CompletionToken>(token));
  }
  /// Calls `method` with a multipart/form-data body (uploads).
  template <class CompletionToken>
  auto async_call_form(std::string_view method, net::MultipartForm form, CompletionToken&& token) {
    return async_send(make_form_request(method, std::move(form)), std::forward<CompletionToken>(token));
  }

  template <class CompletionToken>
  auto async_get_me(CompletionToken&& token) {
    return async_call("getMe", nlohmann::json::object(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_send_message(const SendMessageParams& params, CompletionToken&& token) {
    return async_call("sendMessage", params.to_json(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_edit_message_text(const EditMessageTextParams& params, CompletionToken&& token) {
    return async_call("editMessageText", params.to_json(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_copy_message(const CopyMessageParams& params, CompletionToken&& token) {
    return async_call("copyMessage", params.to_json(), std::forward<CompletionToken>(token));
  }
  /// Any media kind (`params.kind`); sendDocument by default.
  template <class CompletionToken>
  auto async_send_media(const SendMediaParams& params, CompletionToken&& token) {
    return async_call_form(params.method(), params.to_form(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_send_document(const SendDocumentParams& params, CompletionToken&& token) {
    return async_send_media(params, std::forward<CompletionToken>(token));
  }
  /// sendMediaGroup; the result is an array of Messages.
  template <class CompletionToken>
  auto async_send_media_group(const SendMediaGroupParams& params, CompletionToken&& token) {
    return async_call_form("sendMediaGroup", params.to_form(), std::forward<CompletionToken>(token));
  }
  /// getFile: the result's "file_path" is what `async_download` takes.
  template <class CompletionToken>
  auto async_get_file(std::string file_id, CompletionToken&& token) {
    return async_call("getFile", nlohmann::json{{"file_id", std::move(file_id)}},
                      std::forward<CompletionToken>(token));
  }
  /// Streams the file at `file_path` (from getFile) into `destination`;
  /// completes with the number of bytes written.
  template <class CompletionToken>
  auto async_download(const std::string& file_path, std::filesystem::path destination, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, DownloadSignature>(
        [this](auto handler, net::HttpRequest request) {
          start_download(*http_, std::move(request),
                         boost::asio::any_completion_handler<DownloadSignature>(std::move(handler)));
        },
        token, make_download_request(file_path, std::move(destination)));
  }

  const net::Endpoint& endpoint() const noexcept { return endpoint_; }
  const Secret& token() const noexcept { return token_; }

 private:
  template <class CompletionToken>
  auto async_send(net::HttpRequest request, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, net::HttpRequest req) {
          start(*http_, std::move(req), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(request));
  }

  net::RequestTarget method_target(std::string_view method) const;
  net::HttpRequest make_json_request(std::string_view method, const nlohmann::json& params) const;
  net::HttpRequest make_form_request(std::string_view method, net::MultipartForm form) const;
  net::HttpRequest make_download_request(const std::string& file_path, std::filesystem::path destination) const;

  static void start(net::HttpsClient& http, net::HttpRequest request,
                    boost::asio::any_completion_handler<Signature> handler);
  static void start_download(net::HttpsClient& http, net::HttpRequest request,
                             boost::asio::any_completion_handler<DownloadSignature> handler);

  net::HttpsClient* http_;
  net::Endpoint endpoint_;
  Secret token_;
};

}  // namespace floodgate::telegram
