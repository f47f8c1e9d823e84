// floodgate/net/tls.hpp: TLS contexts that verify by default.
//
// A client context built here speaks TLS 1.2 or 1.3 only and verifies the
// server's certificate chain, against the system CA store unless the caller
// names its own CAs (a file or PEM text: how tests trust a simulator's
// run-time certificate). Verification cannot be forgotten: it is on unless
// `verify_peer = false` is written out.
//
// A context checks the chain; the *name* check is per connection, because it
// depends on the host being dialled. `set_tls_peer_name` does both halves of
// that: SNI (for a DNS name) and the host-name or IP-address check that
// OpenSSL then applies during the handshake.
//
//   auto ctx = floodgate::net::make_client_tls_context({.ca_pem = certs.ca_pem});
//   boost::asio::ssl::stream<tcp::socket> stream(ioc, *ctx);
//   if (auto ec = floodgate::net::set_tls_peer_name(stream.native_handle(), "127.0.0.1")) ...
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "floodgate/core/secret.hpp"

namespace floodgate::net {

struct TlsClientOptions {
  /// Check the server's chain and name. Switch off only to study TLS itself;
  /// a client without verification talks to whoever answers.
  bool verify_peer = true;
  /// Trust the CA certificates in this PEM file instead of the system store.
  std::filesystem::path ca_file;
  /// Trust these PEM CA certificates instead of the system store (tests pass
  /// `TestCertificates::ca_pem` here). May be combined with `ca_file`.
  std::string ca_pem;
};

/// A client context: TLS 1.2+, peer verification per `options`.
/// Throws floodgate::Error when a CA file or PEM cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(const TlsClientOptions& options = {});

/// A server context presenting `certificate_chain_pem` (leaf first) with its
/// private key. TLS 1.2+. Throws floodgate::Error on unusable PEM.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(std::string_view certificate_chain_pem,
                                                                   const Secret& private_key_pem);

/// Prepares one client connection (`stream.native_handle()`) for `host`: sets
/// SNI when `host` is a DNS name and makes the handshake fail unless the
/// certificate names `host` (DNS name or IP address, per RFC 6125). Returns an
/// error only when OpenSSL refuses the parameters.
std::error_code set_tls_peer_name(::SSL* ssl, std::string_view host);

}  // namespace floodgate::net
