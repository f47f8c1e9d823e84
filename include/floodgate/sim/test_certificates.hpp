// floodgate/sim/test_certificates.hpp: a throw-away PKI for tests and simulators.
//
// Generates, in memory and in milliseconds, a self-signed CA and a server
// certificate signed by it (ECDSA P-256, valid from an hour ago for a day).
// The simulators serve the server certificate; clients trust `ca_pem`. The
// client's real verification path (chain and host name) is thus exercised on
// every test connection, with no file on disk and no verification switched off.
//
//   auto certs = floodgate::sim::TestCertificates::generate();  // localhost, 127.0.0.1, ::1
//   auto server_ctx = make_server_tls_context(certs.server_chain_pem, certs.server_key_pem);
//   auto client_ctx = make_client_tls_context({.ca_pem = certs.ca_pem});
//
// Never use these for anything but local testing: the keys live in process memory.
#pragma once

#include <string>
#include <vector>

#include "floodgate/core/secret.hpp"

namespace floodgate::sim {

struct TestCertificates {
  std::string ca_pem;            ///< the CA certificate; what a client trusts
  std::string server_chain_pem;  ///< the server certificate followed by the CA certificate
  Secret server_key_pem;         ///< the server's private key (PKCS#8 PEM)

  /// Names the server certificate is valid for.
  struct Names {
    std::vector<std::string> dns = {"localhost"};
    std::vector<std::string> ip = {"127.0.0.1", "::1"};
  };

  /// A fresh CA and server certificate. Throws floodgate::Error if OpenSSL fails.
  static TestCertificates generate(const Names& names);
  static TestCertificates generate() { return generate(Names{}); }
};

}  // namespace floodgate::sim
