#include "floodgate/net/http_client.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <map>
#include <mutex>
#include <random>

#include "body_pieces.hpp"
#include "open_transport.hpp"
#include "floodgate/async/detail/associations.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/net/tls.hpp"

namespace floodgate::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;
using detail::BodyPiece;
using detail::PieceBody;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
}

// ---- MultipartForm, HttpRequest, HttpResponse ----

MultipartForm& MultipartForm::add_field(std::string name, std::string value) {
  parts_.push_back({std::move(name), {}, {}, std::move(value)});
  return *this;
}

MultipartForm& MultipartForm::add_file(std::string name, std::string filename, std::string bytes,
                                       std::string content_type) {
  parts_.push_back({std::move(name), std::move(filename), std::move(content_type), std::move(bytes)});
  return *this;
}

MultipartForm& MultipartForm::add_file_from_path(std::string name, std::filesystem::path path,
                                                 std::string content_type, std::string filename) {
  if (filename.empty()) filename = path.filename().string();
  parts_.push_back({std::move(name), std::move(filename), std::move(content_type), std::move(path)});
  return *this;
}

HttpRequest HttpRequest::get(Endpoint endpoint, RequestTarget target) {
  HttpRequest request;
  request.endpoint = std::move(endpoint);
  request.target = std::move(target);
  return request;
}

HttpRequest HttpRequest::post_json(Endpoint endpoint, RequestTarget target, const nlohmann::json& json) {
  HttpRequest request = get(std::move(endpoint), std::move(target));
  request.method = HttpMethod::post;
  request.body = TextBody{"application/json", json.dump()};
  return request;
}

HttpRequest HttpRequest::post_form(Endpoint endpoint, RequestTarget target, MultipartForm form) {
  HttpRequest request = get(std::move(endpoint), std::move(target));
  request.method = HttpMethod::post;
  request.body = std::move(form);
  return request;
}

std::string_view HttpResponse::header(std::string_view name) const noexcept {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return {};
}

// ---- Request bodies ----

namespace {

struct OutgoingBody {
  std::string content_type;
  PieceBody::value_type pieces;
};

std::string random_boundary() {
  std::random_device random;
  std::uniform_int_distribution<int> hex_digit(0, 15);
  std::string boundary = "floodgate-";
  for (int i = 0; i < 32; ++i) boundary += "0123456789abcdef"[hex_digit(random)];
  return boundary;
}

// Names and file names inside Content-Disposition quotes, escaped as the
// HTML living standard does for form submission.
std::string form_quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "%22"; break;
      case '\r': out += "%0D"; break;
      case '\n': out += "%0A"; break;
      default: out += c;
    }
  }
  return out + '"';
}

std::error_code encode_multipart(const MultipartForm& form, OutgoingBody& body) {
  const std::string boundary = random_boundary();
  body.content_type = "multipart/form-data; boundary=" + boundary;
  auto pieces = std::make_shared<std::vector<BodyPiece>>();
  for (const auto& part : form.parts()) {
    std::string head = "--" + boundary + "\r\nContent-Disposition: form-data; name=" + form_quoted(part.name);
    if (!part.filename.empty()) head += "; filename=" + form_quoted(part.filename);
    head += "\r\n";
    if (!part.content_type.empty()) head += "Content-Type: " + part.content_type + "\r\n";
    head += "\r\n";
    pieces->push_back({std::move(head)});
    if (const auto* path = std::get_if<std::filesystem::path>(&part.content)) {
      std::error_code size_error;
      const auto size = std::filesystem::file_size(*path, size_error);
      if (size_error) return errc::file_error;
      pieces->push_back({{}, *path, size});
    } else {
      pieces->push_back({std::get<std::string>(part.content)});
    }
    pieces->push_back({"\r\n"});
  }
  pieces->push_back({"--" + boundary + "--\r\n"});
  body.pieces = std::move(pieces);
  return {};
}

std::error_code encode_body(const HttpRequest& request, OutgoingBody& body) {
  if (const auto* text = std::get_if<TextBody>(&request.body)) {
    body.content_type = text->content_type;
    body.pieces = std::make_shared<const std::vector<BodyPiece>>(std::vector<BodyPiece>{{text->data}});
  } else if (const auto* form = std::get_if<MultipartForm>(&request.body)) {
    return encode_multipart(*form, body);
  } else if (const auto* file = std::get_if<FileBody>(&request.body)) {
    std::error_code size_error;
    const auto size = std::filesystem::file_size(file->path, size_error);
    if (size_error) return errc::file_error;
    body.content_type = file->content_type;
    body.pieces = std::make_shared<const std::vector<BodyPiece>>(std::vector<BodyPiece>{{{}, file->path, size}});
  }
  return {};
}

// ---- Connections ----

struct Connection {
  using Stream = std::variant<beast::tcp_stream, detail::TlsStream>;

  Connection(const Endpoint& target, const asio::any_io_executor& executor, ssl::context& tls)
      : endpoint(target),
        stream(target.tls ? Stream(std::in_place_index<1>, executor, tls) : Stream(std::in_place_index<0>, executor)) {}

  beast::tcp_stream& tcp() {
    return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); }, stream);
  }

  // A kept-alive connection is usable if it is young enough and the server
  // has not closed it (or sent anything unasked, which is just as fatal).
  bool still_usable(SteadyTime now, std::chrono::milliseconds idle_timeout) {
    if (now - idle_since > idle_timeout || buffer.size() != 0) return false;
    char byte;
    const auto n = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  Endpoint endpoint;
  Stream stream;
  beast::flat_buffer buffer;  // bytes read past the previous response
  SteadyTime idle_since;
};

struct Received {
  std::error_code ec;
  HttpResponse response;
};

// The time limits of one request.
struct Deadlines {
  SteadyTime total;
  std::chrono::milliseconds read;
  std::chrono::milliseconds connect;

  SteadyTime next_io() const { return std::min(std::chrono::steady_clock::now() + read, total); }
  SteadyTime connect_by() const { return std::min(std::chrono::steady_clock::now() + connect, total); }
};

bool is_closed_by_peer(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::connection_aborted ||
         ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated;
}

// Which half of the exchange failed: what the server may have seen differs.
enum class Phase { sending, receiving };

// Maps an error from writing the request (it was not completely sent) or
// reading the response (it was: the server may have acted on it).
std::error_code classify_transfer_error(const beast::error_code& ec, Phase phase, bool writing_a_file) {
  const bool sent = phase == Phase::receiving;
  if (ec == beast::error::timeout) return sent ? errc::response_timeout : errc::timeout;
  if (ec == asio::error::operation_aborted) return errc::cancelled;
  if (is_closed_by_peer(ec)) return sent ? errc::response_cut_off : errc::connection_closed;
  if (ec == http::error::body_limit || ec == http::error::buffer_overflow || ec == http::error::header_limit) {
    return errc::response_too_large;
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) return errc::protocol_error;
  if (writing_a_file || ec == boost::system::errc::io_error) return errc::file_error;
  return sent ? errc::response_cut_off : errc::connection_closed;
}

}  // namespace

// ---- The client ----

struct detail::HttpClientState {
  HttpClientState(asio::any_io_executor ex, HttpClientOptions opts) : executor(std::move(ex)), options(std::move(opts)) {
    if (!options.tls) options.tls = make_client_tls_context();
  }

  std::unique_ptr<Connection> take_idle(const Endpoint& endpoint) {
    std::lock_guard lock(mutex);
    const auto it = idle.find(endpoint);
    if (it == idle.end()) return nullptr;
    const auto now = std::chrono::steady_clock::now();
    auto& stack = it->second;
    while (!stack.empty()) {
      auto connection = std::move(stack.back());
      stack.pop_back();
      if (connection->still_usable(now, options.idle_timeout)) return connection;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Connection> connection) {
    connection->idle_since = std::chrono::steady_clock::now();
    connection->tcp().expires_never();
    std::lock_guard lock(mutex);
    auto& stack = idle[connection->endpoint];
    if (stack.size() < options.max_idle_per_endpoint) stack.push_back(std::move(connection));
  }

  asio::any_io_executor executor;
  HttpClientOptions options;
  std::mutex mutex;
  std::map<Endpoint, std::vector<std::unique_ptr<Connection>>> idle;
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> connections_reused{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> failures{0};
};

namespace {

using State = detail::HttpClientState;

struct Opened {
  std::error_code ec;
  std::unique_ptr<Connection> connection;
};

asio::awaitable<Opened> open_connection(State& state, const Endpoint& endpoint, const Deadlines& deadlines) {
  const SteadyTime connect_by = deadlines.connect_by();
  auto connection =
      std::make_unique<Connection>(endpoint, co_await asio::this_coro::executor, *state.options.tls);
  if (auto ec = co_await detail::connect_tcp(connection->tcp(), endpoint, connect_by)) co_return Opened{ec};
  ++state.connections_opened;
  if (auto* tls = std::get_if<detail::TlsStream>(&connection->stream)) {
    if (auto ec = co_await detail::handshake_tls(*tls, endpoint, connect_by)) co_return Opened{ec};
  }
  co_return Opened{{}, std::move(connection)};
}

struct Exchanged {
  Received outcome;
  bool keep_alive = false;
  bool response_started = false;  // false: no response byte arrived
};

template <class Parser, class Stream>
asio::awaitable<beast::error_code> read_rest(Stream& stream, Connection& connection, Parser& parser,
                                             const Deadlines& deadlines) {
  while (!parser.is_done()) {
    connection.tcp().expires_at(deadlines.next_io());
    auto [ec, n] = co_await http::async_read_some(stream, connection.buffer, parser, use_tuple);
    if (ec) co_return ec;
  }
  co_return beast::error_code{};
}

template <class Parser>
void copy_head(const Parser& parser, HttpResponse& response) {
  response.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
}

template <class Stream>
asio::awaitable<Exchanged> exchange(State& state, Connection& connection, Stream& stream, const HttpRequest& request,
                                    const OutgoingBody& body, const Deadlines& deadlines) {
  Exchanged result;
  http::request<PieceBody> message{request.method == HttpMethod::get ? http::verb::get : http::verb::post,
                                   request.target.reveal(), 11};
  const bool default_port = request.endpoint.port == (request.endpoint.tls ? 443 : 80);
  message.set(http::field::host, default_port ? request.endpoint.host : request.endpoint.host_and_port());
  message.set(http::field::user_agent, state.options.user_agent);
  for (const auto& [name, value] : request.headers) message.insert(name, value);
  if (body.pieces) {
    message.set(http::field::content_type, body.content_type);
    message.body() = body.pieces;
  }
  message.keep_alive(true);
  message.prepare_payload();

  http::request_serializer<PieceBody> serializer(message);
  while (!serializer.is_done()) {
    connection.tcp().expires_at(deadlines.next_io());
    auto [ec, n] = co_await http::async_write_some(stream, serializer, use_tuple);
    if (ec) {
      result.outcome.ec = classify_transfer_error(ec, Phase::sending, false);
      co_return result;
    }
  }

  http::response_parser<http::empty_body> head;
  head.body_limit(boost::none);  // the limit depends on where the body goes; checked below
  connection.tcp().expires_at(deadlines.next_io());
  auto [head_error, head_bytes] = co_await http::async_read_header(stream, connection.buffer, head, use_tuple);
  result.response_started = head_bytes > 0 || connection.buffer.size() > 0;
  if (head_error) {
    result.outcome.ec = classify_transfer_error(head_error, Phase::receiving, false);
    co_return result;
  }
  result.response_started = true;
  // Beast takes any three digits; HTTP's status codes are 100 to 599, and
  // "004" or "999" is a server that cannot be understood.
  if (const auto status = head.get().result_int(); status < 100 || status > 599) {
    result.outcome.ec = errc::protocol_error;
    co_return result;
  }

  HttpResponse& response = result.outcome.response;
  beast::error_code body_error;
  const bool to_file = !request.download_to.empty() && head.get().result_int() / 100 == 2;
  // A declared length is checked here because the header has already been
  // parsed; the body parser's own limit then covers chunked bodies.
  if (!to_file && head.content_length().value_or(0) > state.options.max_body_bytes) {
    result.outcome.ec = errc::response_too_large;
    co_return result;
  }
  if (to_file) {
    http::response_parser<http::file_body> parser(std::move(head));
    parser.body_limit(boost::none);
    parser.get().body().open(request.download_to.string().c_str(), beast::file_mode::write, body_error);
    if (body_error) {
      result.outcome.ec = errc::file_error;
      co_return result;
    }
    body_error = co_await read_rest(stream, connection, parser, deadlines);
    copy_head(parser, response);
    beast::error_code file_error;  // file_body counts only what it reads, so ask the file
    response.body_bytes = parser.get().body().file().size(file_error);
    result.keep_alive = parser.keep_alive();
    if (body_error) {  // no half-written file is left behind
      parser.get().body().close();
      std::filesystem::remove(request.download_to, file_error);
    }
  } else {
    http::response_parser<http::string_body> parser(std::move(head));
    parser.body_limit(state.options.max_body_bytes);
    body_error = co_await read_rest(stream, connection, parser, deadlines);
    copy_head(parser, response);
    response.body = std::move(parser.get().body());
    response.body_bytes = response.body.size();
    result.keep_alive = parser.keep_alive();
  }
  if (body_error) {
    result.keep_alive = false;
    result.outcome.ec = classify_transfer_error(body_error, Phase::receiving, to_file);
  }
  co_return result;
}

asio::awaitable<Received> perform(std::shared_ptr<State> state, HttpRequest request) {
  const auto& options = state->options;
  const auto total = request.total_timeout.value_or(options.total_timeout);
  const Deadlines deadlines{std::chrono::steady_clock::now() + total, request.read_timeout.value_or(options.read_timeout),
                            options.connect_timeout};
  if (request.endpoint.host.empty() || request.endpoint.port == 0) co_return Received{errc::invalid_url};
  if (!request.endpoint.tls && !options.allow_plain_http) co_return Received{errc::insecure_scheme};
  OutgoingBody body;
  if (auto ec = encode_body(request, body)) co_return Received{ec};

  for (bool first_attempt = true;; first_attempt = false) {
    auto connection = state->take_idle(request.endpoint);
    const bool reused = connection != nullptr;
    if (reused) {
      ++state->connections_reused;
    } else {
      auto opened = co_await open_connection(*state, request.endpoint, deadlines);
      if (opened.ec) co_return Received{opened.ec};
      connection = std::move(opened.connection);
    }
    auto exchanged = co_await std::visit(
        [&](auto& stream) { return exchange(*state, *connection, stream, request, body, deadlines); },
        connection->stream);
    // A server may close a kept-alive connection just as we reuse it; resend
    // once, but only a GET: a POST might have been acted on already.
    const bool stale_reuse = reused && !exchanged.response_started &&
                             (exchanged.outcome.ec == errc::connection_closed || exchanged.outcome.ec == errc::response_cut_off);
    if (stale_reuse && first_attempt && request.method == HttpMethod::get) continue;
    if (!exchanged.outcome.ec && exchanged.keep_alive) state->give_back(std::move(connection));
    co_return std::move(exchanged.outcome);
  }
}

std::error_code error_from_exception(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  } catch (...) {
    return std::make_error_code(std::errc::state_not_recoverable);
  }
}

const char* method_name(HttpMethod method) { return method == HttpMethod::get ? "GET" : "POST"; }

}  // namespace

HttpsClient::HttpsClient(executor_type executor, HttpClientOptions options)
    : executor_(std::move(executor)), state_(std::make_shared<State>(executor_, std::move(options))) {}

HttpsClient::~HttpsClient() { close_idle_connections(); }

void HttpsClient::start(const std::shared_ptr<State>& state, HttpRequest request,
                        asio::any_completion_handler<Signature> handler) {
  ++state->requests;
  auto description = fmt::format("{} {}{}", method_name(request.method), request.endpoint.to_string(),
                                 request.target);  // redacted: the target formats its secrets as "2402****"
  // co_spawn hands the caller's cancellation slot to the request's coroutine (terminal cancellation).
  const auto associated = async::detail::associations_of(handler, state->executor);
  asio::co_spawn(
      state->executor, perform(state, std::move(request)),
      associated.wrap([state, description = std::move(description), handler = std::move(handler)](
                                                const std::exception_ptr& error, Received outcome) mutable {
        if (error) outcome = Received{error_from_exception(error)};
        if (outcome.ec) {
          ++state->failures;
          log(LogLevel::debug, "{} failed: {}", description, outcome.ec.message());
        }
        std::move(handler)(outcome.ec, std::move(outcome.response));
      }));
}

HttpClientStats HttpsClient::stats() const noexcept {
  return {state_->connections_opened.load(), state_->connections_reused.load(), state_->requests.load(),
          state_->failures.load()};
}

void HttpsClient::close_idle_connections() {
  std::map<Endpoint, std::vector<std::unique_ptr<Connection>>> closing;
  {
    std::lock_guard lock(state_->mutex);
    closing.swap(state_->idle);
  }
}

}  // namespace floodgate::net
