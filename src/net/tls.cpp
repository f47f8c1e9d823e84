#include "floodgate/net/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>

#include <fmt/format.h>

#include "floodgate/core/error.hpp"

namespace floodgate::net {
namespace ssl = boost::asio::ssl;

namespace {

std::string openssl_error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof buffer);
  return buffer;
}

void require_tls12_or_later(ssl::context& ctx) {
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    throw Error(fmt::format("TLS: cannot require TLS 1.2: {}", openssl_error_text()));
  }
}

}  // namespace

std::shared_ptr<ssl::context> make_client_tls_context(const TlsClientOptions& options) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  require_tls12_or_later(*ctx);
  if (!options.verify_peer) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (options.ca_file.empty() && options.ca_pem.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) throw Error(fmt::format("TLS: cannot load the system CA store: {}", ec.message()));
    return ctx;
  }
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file.string(), ec);
    if (ec) {
      throw Error(fmt::format("TLS: cannot load CA file {}: {}", options.ca_file.string(), ec.message()));
    }
  }
  if (!options.ca_pem.empty()) {
    ctx->add_certificate_authority(boost::asio::buffer(options.ca_pem), ec);
    if (ec) throw Error(fmt::format("TLS: cannot load CA PEM: {}", ec.message()));
  }
  return ctx;
}

std::shared_ptr<ssl::context> make_server_tls_context(std::string_view certificate_chain_pem,
                                                      const Secret& private_key_pem) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  require_tls12_or_later(*ctx);
  boost::system::error_code ec;
  ctx->use_certificate_chain(boost::asio::buffer(certificate_chain_pem.data(), certificate_chain_pem.size()),
                             ec);
  if (ec) throw Error(fmt::format("TLS: unusable server certificate chain: {}", ec.message()));
  ctx->use_private_key(boost::asio::buffer(private_key_pem.reveal()), ssl::context::pem, ec);
  if (ec) throw Error(fmt::format("TLS: unusable server private key: {}", ec.message()));
  return ctx;
}

std::error_code set_tls_peer_name(::SSL* ssl, std::string_view host) {
  const std::string name(host);
  boost::system::error_code parse_error;
  boost::asio::ip::make_address(name, parse_error);
  const bool is_ip_literal = !parse_error;
  if (is_ip_literal) {
    // RFC 6066 forbids IP literals in SNI; the certificate must carry the
    // address as an iPAddress subjectAltName.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      return std::make_error_code(std::errc::invalid_argument);
    }
    return {};
  }
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return std::make_error_code(std::errc::invalid_argument);
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, name.c_str()) != 1) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

}  // namespace floodgate::net
