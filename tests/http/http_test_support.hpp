// Shared by the http/ tests: an io_context thread, simulators and a pool of
// providers pointed at them.
#pragma once

#include <boost/asio/use_future.hpp>

#include <memory>
#include <tuple>

#include "floodgate/http/api_key_pool.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/http_api_server.hpp"
#include "../net/io_thread.hpp"

namespace floodgate::test {

/// One certificate for every simulator of a test, so one client trusts them all.
inline const sim::TestCertificates& shared_certificates() {
  static const auto certificates = sim::TestCertificates::generate();
  return certificates;
}

inline std::unique_ptr<sim::HttpApiServer> start_server(sim::HttpApiServerOptions options) {
  options.certificates = shared_certificates();
  auto server = std::make_unique<sim::HttpApiServer>(std::move(options));
  server->start();
  return server;
}

inline net::HttpClientOptions trusting_client_options() {
  net::HttpClientOptions options;
  options.tls = net::make_client_tls_context({.ca_pem = shared_certificates().ca_pem});
  options.read_timeout = std::chrono::seconds(5);
  options.total_timeout = std::chrono::seconds(10);
  return options;
}

/// Keys "<prefix>-1".."<prefix>-n" with secrets "sk-<prefix>-<i>-secretvalue".
inline std::vector<http::ApiKeySpec> make_keys(const std::string& prefix, int count) {
  std::vector<http::ApiKeySpec> keys;
  for (int i = 1; i <= count; ++i) {
    keys.push_back({prefix + "-" + std::to_string(i), Secret("sk-" + prefix + "-" + std::to_string(i) + "-secretvalue")});
  }
  return keys;
}

inline std::vector<Secret> secrets_of(const std::vector<http::ApiKeySpec>& keys) {
  std::vector<Secret> out;
  for (const auto& key : keys) out.push_back(key.key);
  return out;
}

inline std::tuple<std::error_code, http::ApiResult> call(http::ApiKeyPool& pool, http::ApiCall api_call) {
  return pool.async_call(std::move(api_call), boost::asio::use_future).get();
}

/// A JSON transcription request with an id the simulator records.
inline http::ApiCall transcribe(std::string id, std::uint32_t seconds = 1) {
  auto c = http::ApiCall::post_json("/transcribe", {{"audio", "UklGRg=="}, {"seconds", seconds}, {"id", id}});
  c.cost = seconds;
  return c;
}

}  // namespace floodgate::test
