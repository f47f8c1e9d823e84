// Shared by the net/ and sim/ tests: an io_context on its own thread, and a
// client that trusts a simulator's run-time CA.
#pragma once

#include <boost/asio/use_future.hpp>

#include <nlohmann/json.hpp>

#include <tuple>

#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "../net/io_thread.hpp"

namespace floodgate::test {

/// Client options that trust `server`'s CA (TLS) or allow its plain http.
inline net::HttpClientOptions client_options_for(const sim::BotApiServer& server) {
  net::HttpClientOptions options;
  if (!server.ca_pem().empty()) options.tls = net::make_client_tls_context({.ca_pem = server.ca_pem()});
  options.allow_plain_http = server.ca_pem().empty();
  return options;
}

/// Sends `request` and waits for the result.
inline std::tuple<std::error_code, net::HttpResponse> send(net::HttpsClient& client, net::HttpRequest request) {
  return client.async_request(std::move(request), boost::asio::use_future).get();
}

/// "/bot<token>/<method>"
inline net::RequestTarget bot_target(const Secret& token, std::string_view method) {
  return net::RequestTarget("/bot").append(token).append("/" + std::string(method));
}

/// A Bot API call with JSON parameters; returns the HTTP status and the parsed body.
struct ApiReply {
  int status = 0;
  nlohmann::json body;
};
inline ApiReply call_api(net::HttpsClient& client, const sim::BotApiServer& server, const Secret& token,
                         std::string_view method, const nlohmann::json& params = nlohmann::json::object()) {
  auto [ec, response] = send(client, net::HttpRequest::post_json(server.endpoint(), bot_target(token, method), params));
  if (ec) throw std::runtime_error("request failed: " + ec.message());
  return {response.status, nlohmann::json::parse(response.body)};
}

}  // namespace floodgate::test
