#include "floodgate/sim/bot_api_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <sstream>

#include "bot_api_scenario.hpp"
#include "bot_api_state.hpp"
#include "loopback_server.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/net/tls.hpp"

namespace floodgate::sim {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using detail::Reply;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kMaxRequestBody = 64ull << 20;  // Telegram accepts 50 MB uploads
constexpr auto kIdleConnectionTimeout = std::chrono::minutes(2);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

}  // namespace

struct BotApiServer::Impl {
  Impl(BotApiServerOptions opts, TimeSource time)
      : options(std::move(opts)), now(std::move(time)), state(options.limits, options.open_world, now) {
    for (const auto& token : options.tokens) state.add_token(token.reveal());
    if (options.tls) {
      if (!options.certificates) options.certificates = sim::TestCertificates::generate();
      tls = net::make_server_tls_context(options.certificates->server_chain_pem,
                                         options.certificates->server_key_pem);
    }
  }

  asio::awaitable<void> serve_connection(tcp::socket socket);
  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream);
  asio::awaitable<Reply> answer(const http::request<http::string_body>& request);
  asio::awaitable<Reply> wait_for_updates(Reply reply);

  // Wakes every long poll so it looks for new updates. Thread-safe.
  void wake_pollers() {
    std::lock_guard lock(run_mutex);
    if (!server.io()) return;
    asio::post(*server.io(), [this] {
      for (auto* timer : poll_waiters) timer->cancel();
    });
  }

  BotApiServerOptions options;
  TimeSource now;
  detail::BotApiState state;
  std::shared_ptr<ssl::context> tls;
  std::atomic<std::uint64_t> connections{0};

  std::mutex run_mutex;  // guards the server against start/stop/wake races
  detail::LoopbackServer server;
  std::vector<asio::steady_timer*> poll_waiters;  // touched only on the server thread
};

asio::awaitable<void> BotApiServer::Impl::serve_connection(tcp::socket socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  if (!tls) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve_requests(stream);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls);
  beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
  auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
  if (handshake_error) co_return;  // e.g. a client that rejected our certificate
  co_await serve_requests(stream);
}

template <class Stream>
asio::awaitable<void> BotApiServer::Impl::serve_requests(Stream& stream) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxRequestBody);
    beast::get_lowest_layer(stream).expires_after(kIdleConnectionTimeout);
    auto [read_error, read_bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_error) co_return;
    beast::get_lowest_layer(stream).expires_never();
    const auto request = parser.release();

    Reply reply = co_await answer(request);
    const auto fault = reply.delivery_fault;
    if (fault && fault->kind == Fault::Kind::drop_connection) co_return;  // closes without a word
    if (fault && fault->kind == Fault::Kind::slow_reply) {
      asio::steady_timer delay(co_await asio::this_coro::executor, fault->delay);
      co_await delay.async_wait(use_tuple);
    }

    http::response<http::string_body> response{static_cast<http::status>(reply.status), request.version()};
    response.set(http::field::server, "floodgate-sim");
    response.set(http::field::content_type, reply.content_type);
    if (reply.retry_after > 0) response.set(http::field::retry_after, std::to_string(reply.retry_after));
    response.keep_alive(request.keep_alive());
    response.body() = std::move(reply.body);
    response.prepare_payload();

    beast::get_lowest_layer(stream).expires_after(kWriteTimeout);
    if (fault && fault->kind == Fault::Kind::truncated_response) {
      std::ostringstream wire;
      wire << response;
      const std::string text = wire.str();
      const auto cut = text.size() - response.body().size() / 2 - 1;  // inside the body, never at its end
      co_await asio::async_write(stream, asio::buffer(text.data(), cut), use_tuple);
      co_return;
    }
    auto [write_error, written] = co_await http::async_write(stream, response, use_tuple);
    if (write_error || !response.keep_alive()) co_return;
  }
}

asio::awaitable<Reply> BotApiServer::Impl::answer(const http::request<http::string_body>& request) {
  const std::string_view target = request.target();
  const auto query_start = target.find('?');
  // Clients may percent-encode the path (python-telegram-bot writes the
  // token's ':' as %3A in download URLs); Telegram decodes it.
  const auto path = detail::percent_decode_path(target.substr(0, query_start));
  if (!path) co_return detail::api_error(404, "Not Found");
  const std::string_view decoded_path = *path;
  const auto now_ns = now();

  // /file/bot<token>/<file_path>
  if (decoded_path.starts_with("/file/bot")) {
    const auto rest = decoded_path.substr(9);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) co_return detail::api_error(404, "Not Found");
    co_return state.handle_download(std::string(rest.substr(0, slash)), rest.substr(slash + 1), now_ns);
  }
  // /bot<token>/<method>
  if (!decoded_path.starts_with("/bot")) co_return detail::api_error(404, "Not Found");
  const auto rest = decoded_path.substr(4);
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 == rest.size() || rest.find('/', slash + 1) != rest.npos) {
    co_return detail::api_error(404, "Not Found");
  }
  const std::string token(rest.substr(0, slash));
  const auto method = rest.substr(slash + 1);

  detail::FormParams params;
  const bool decoded =
      (query_start == std::string_view::npos || detail::parse_urlencoded(target.substr(query_start + 1), params)) &&
      detail::parse_body(request[http::field::content_type], request.body(), params);
  Reply reply = state.handle_method(token, method, decoded ? &params : nullptr, now_ns);
  if (reply.wake_polls) {  // a waiting getUpdates was ended: it answers 409 (this is the server's thread)
    for (auto* timer : poll_waiters) timer->cancel();
  }
  if (reply.poll) reply = co_await wait_for_updates(std::move(reply));
  co_return reply;
}

// Long polling: wait until an update is pushed or the poll's timeout ends.
// Waiting is in real time (it is what a client's read timeout measures).
asio::awaitable<Reply> BotApiServer::Impl::wait_for_updates(Reply reply) {
  const auto delivery_fault = reply.delivery_fault;
  const auto deadline = std::chrono::steady_clock::now() + reply.poll->timeout;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (reply.poll) {
    auto poll = *reply.poll;
    if (std::chrono::steady_clock::now() >= deadline) {
      poll.timeout = std::chrono::seconds(0);  // answer now, even if empty
    } else {
      timer.expires_at(deadline);
      poll_waiters.push_back(&timer);
      co_await timer.async_wait(use_tuple);  // cancelled by wake_pollers when an update arrives
      std::erase(poll_waiters, &timer);
    }
    reply = state.poll_updates(poll, now());
  }
  reply.delivery_fault = delivery_fault;
  co_return reply;
}

// ---- Public interface ----

BotApiServer::BotApiServer(BotApiServerOptions options) : BotApiServer(std::move(options), SteadyClock{}) {}

BotApiServer::BotApiServer(BotApiServerOptions options, TimeSource now)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(now))) {}

BotApiServer::~BotApiServer() { stop(); }

void BotApiServer::start() {
  std::lock_guard lock(impl_->run_mutex);
  impl_->server.start("BotApiServer", impl_->options.port, [impl = impl_.get()](tcp::socket socket) {
    ++impl->connections;
    return impl->serve_connection(std::move(socket));
  });
}

void BotApiServer::stop() {
  std::lock_guard lock(impl_->run_mutex);
  impl_->server.stop();
  impl_->poll_waiters.clear();  // their timers went with the handlers
}

std::uint16_t BotApiServer::port() const {
  std::lock_guard lock(impl_->run_mutex);
  return impl_->server.port();
}

std::string BotApiServer::url() const { return endpoint().to_string(); }

net::Endpoint BotApiServer::endpoint() const { return net::Endpoint{impl_->options.tls, "127.0.0.1", port()}; }

const std::string& BotApiServer::ca_pem() const {
  static const std::string none;
  return impl_->options.certificates ? impl_->options.certificates->ca_pem : none;
}

void BotApiServer::add_token(const Secret& token) { impl_->state.add_token(token.reveal()); }
void BotApiServer::revoke_token(const Secret& token) { impl_->state.revoke_token(token.reveal()); }
void BotApiServer::set_limits(const Secret& token, const BotApiLimits& limits) {
  impl_->state.set_limits(token.reveal(), limits);
}
void BotApiServer::inject(const Secret& token, const Fault& fault, int times) {
  impl_->state.inject(token.reveal(), fault, times);
}
void BotApiServer::migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id) {
  impl_->state.migrate_chat(from_chat_id, to_chat_id);
}

void BotApiServer::add_user(std::int64_t user_id, std::string first_name, std::string username) {
  impl_->state.add_user(user_id, std::move(first_name), std::move(username));
}
void BotApiServer::start_bot(const Secret& token, std::int64_t user_id) {
  impl_->state.start_bot(token.reveal(), user_id);
}
void BotApiServer::block_bot(const Secret& token, std::int64_t user_id) {
  impl_->state.block_bot(token.reveal(), user_id);
}
void BotApiServer::add_group(std::int64_t chat_id, SimChatType type, std::string title) {
  impl_->state.add_group(chat_id, type, std::move(title));
}
void BotApiServer::add_member(const Secret& token, std::int64_t chat_id) {
  impl_->state.add_member(token.reveal(), chat_id);
}
void BotApiServer::kick_bot(const Secret& token, std::int64_t chat_id) { impl_->state.kick_bot(token.reveal(), chat_id); }

void BotApiServer::apply_scenario(const nlohmann::json& scenario) {
  std::vector<std::string> known;
  for (const auto& token : impl_->options.tokens) known.push_back(token.reveal());
  detail::apply_scenario(impl_->state, scenario, known);
  impl_->wake_pollers();
}

std::int64_t BotApiServer::push_update(const Secret& token, nlohmann::json update) {
  const auto id = impl_->state.push_update(token.reveal(), std::move(update));
  impl_->wake_pollers();
  return id;
}

std::int64_t BotApiServer::push_message(const Secret& token, std::int64_t chat_id, std::string text) {
  const std::int64_t from = chat_id > 0 ? chat_id : 1000001;  // in a group, some member writes
  const auto id = impl_->state.push_message(token.reveal(), chat_id, from, std::move(text));
  impl_->wake_pollers();
  return id;
}

std::int64_t BotApiServer::push_callback_query(const Secret& token, std::int64_t user_id, std::string data) {
  const auto id = impl_->state.push_callback_query(token.reveal(), user_id, std::move(data));
  impl_->wake_pollers();
  return id;
}

std::string BotApiServer::add_file(std::string bytes, std::string file_name) {
  return impl_->state.add_file({}, std::move(bytes), std::move(file_name), "application/octet-stream");
}

std::string BotApiServer::add_file(const Secret& token, std::string bytes, std::string file_name) {
  return impl_->state.add_file(token.reveal(), std::move(bytes), std::move(file_name), "application/octet-stream");
}

TokenStats BotApiServer::stats(const Secret& token) const { return impl_->state.stats(token.reveal()); }

std::vector<SimMessage> BotApiServer::messages(std::int64_t chat_id) const { return impl_->state.messages(chat_id); }
std::vector<SimMessage> BotApiServer::messages(const Secret& token, std::int64_t chat_id) const {
  return impl_->state.messages(token.reveal(), chat_id);
}

std::uint64_t BotApiServer::connections_accepted() const { return impl_->connections.load(); }

}  // namespace floodgate::sim
