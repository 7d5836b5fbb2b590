#include "manifold/supervision/tls_files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace manifold::supervision {

namespace {

using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

ssl_ctx_ptr scratch_context() {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_method()), &SSL_CTX_free};
  // An encrypted key must fail here, not make OpenSSL prompt on the node's terminal.
  if (ctx)
    SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });
  return ctx;
}

/// The reason of the oldest error OpenSSL queued (the root cause), and an empty queue after.
std::string openssl_reason() {
  auto code = ERR_peek_error();
  std::string out = "unknown error";
  if (code != 0) {
    auto reason = ERR_reason_error_string(code);
    out = reason ? reason : "error " + std::to_string(code);
  }
  ERR_clear_error();
  return out;
}

/// Why `path` cannot be opened as a file; empty when it can.
std::string unreadable(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "it is a directory, expected a PEM file";
  if (!S_ISREG(st.st_mode)) return "it is not a regular file, expected a PEM file";
  if (st.st_size == 0) return "the file is empty, expected a PEM file";
  return {};
}

} // namespace

std::vector<std::string> check_tls_files(const cluster_tls_config& tls) {
  std::vector<std::string> problems;
  if (!tls.enabled()) return problems;
  auto name = [](const char* key, const std::string& path) {
    return std::string{"cluster.tls."} + key + " '" + path + "': ";
  };

  // Files that cannot even be opened would only add OpenSSL's "system lib" on top.
  bool cert_ok = true;
  bool key_ok = true;
  bool ca_ok = true;
  for (auto [key, path, ok] : {std::make_tuple("certificate", &tls.certificate, &cert_ok),
                               std::make_tuple("key", &tls.key, &key_ok),
                               std::make_tuple("ca", &tls.ca, &ca_ok)}) {
    auto why = path->empty() ? std::string{"no file given"} : unreadable(*path);
    if (why.empty()) continue;
    problems.push_back(name(key, *path) + why);
    *ok = false;
  }

  ERR_clear_error();
  auto ctx = scratch_context();
  auto key_alone = scratch_context();
  if (!ctx || !key_alone) {
    problems.push_back("cannot check cluster.tls: OpenSSL cannot make a context (" +
                       openssl_reason() + ")");
    return problems;
  }
  if (cert_ok &&
      SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1) {
    problems.push_back(name("certificate", tls.certificate) +
                       "not a PEM certificate (OpenSSL: " + openssl_reason() + ")");
    cert_ok = false;
  }
  // Parsed on its own first, so that a broken key and a key of another certificate read
  // differently.
  if (key_ok &&
      SSL_CTX_use_PrivateKey_file(key_alone.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    problems.push_back(name("key", tls.key) + "not a PEM private key, or one encrypted with a "
                                              "passphrase (OpenSSL: " + openssl_reason() + ")");
    key_ok = false;
  }
  if (cert_ok && key_ok &&
      (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx.get()) != 1))
    problems.push_back(name("key", tls.key) + "does not match the certificate '" +
                       tls.certificate + "' (OpenSSL: " + openssl_reason() + ")");
  if (ca_ok && SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1)
    problems.push_back(name("ca", tls.ca) + "no PEM certificate in it (OpenSSL: " +
                       openssl_reason() + ")");
  ERR_clear_error();
  return problems;
}

} // namespace manifold::supervision
