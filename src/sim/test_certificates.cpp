#include "floodgate/sim/test_certificates.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <memory>

#include "floodgate/core/error.hpp"

namespace floodgate::sim {
namespace {

struct OpenSslDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, OpenSslDeleter>;

[[noreturn]] void fail(const char* what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char detail[256] = "no OpenSSL detail";
  if (code != 0) ERR_error_string_n(code, detail, sizeof detail);
  throw Error(fmt::format("test certificates: {} failed: {}", what, detail));
}

void check(int ok, const char* what) {
  if (ok != 1) fail(what);
}

Owned<EVP_PKEY> new_p256_key() {
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) fail("EC key generation");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext) fail("building an X.509 extension");
  check(X509_add_ext(cert, ext.get(), -1), "adding an X.509 extension");
}

// A certificate for `subject_key` named `common_name`, without extensions or
// signature yet; valid from an hour ago (tolerates clock skew) for a day.
Owned<X509> new_certificate(EVP_PKEY* subject_key, const char* common_name) {
  Owned<X509> cert(X509_new());
  if (!cert) fail("X509_new");
  check(X509_set_version(cert.get(), 2), "setting the X.509 version");

  unsigned char serial_bytes[16];
  check(RAND_bytes(serial_bytes, sizeof serial_bytes), "generating a serial number");
  serial_bytes[0] &= 0x7f;  // serial numbers are positive
  Owned<BIGNUM> serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  if (!serial || !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) fail("setting the serial");

  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600)) {
    fail("setting the validity period");
  }
  check(X509_set_pubkey(cert.get(), subject_key), "setting the public key");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("floodgate test"), -1, -1, 0),
        "setting the organisation");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name),
                                   -1, -1, 0),
        "setting the common name");
  return cert;
}

std::string to_pem(X509* cert) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("BIO_new");
  check(PEM_write_bio_X509(bio.get(), cert), "writing a certificate");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string to_pem(EVP_PKEY* key) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) fail("BIO_new");
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), "writing a key");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string subject_alt_names(const TestCertificates::Names& names) {
  std::string san;
  for (const auto& dns : names.dns) san += (san.empty() ? "" : ",") + ("DNS:" + dns);
  for (const auto& ip : names.ip) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  return san;
}

}  // namespace

TestCertificates TestCertificates::generate(const Names& names) {
  const auto ca_key = new_p256_key();
  const auto ca = new_certificate(ca_key.get(), "floodgate test CA");
  check(X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())), "setting the CA issuer");
  add_extension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) == 0) fail("signing the CA certificate");

  const auto server_key = new_p256_key();
  const std::string common_name = names.dns.empty() ? (names.ip.empty() ? "server" : names.ip.front())
                                                    : names.dns.front();
  const auto server = new_certificate(server_key.get(), common_name.c_str());
  check(X509_set_issuer_name(server.get(), X509_get_subject_name(ca.get())), "setting the server issuer");
  add_extension(server.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(server.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
  add_extension(server.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  add_extension(server.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
  if (const auto san = subject_alt_names(names); !san.empty()) {
    add_extension(server.get(), ca.get(), NID_subject_alt_name, san);
  }
  if (X509_sign(server.get(), ca_key.get(), EVP_sha256()) == 0) fail("signing the server certificate");

  TestCertificates result;
  result.ca_pem = to_pem(ca.get());
  result.server_chain_pem = to_pem(server.get()) + result.ca_pem;
  result.server_key_pem = Secret(to_pem(server_key.get()));
  return result;
}

}  // namespace floodgate::sim
