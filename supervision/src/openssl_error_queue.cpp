// CAF 0.17's openssl session calls SSL_get_error after SSL_read/SSL_write/SSL_accept/
// SSL_connect without clearing the thread's OpenSSL error queue first. All sessions of a node
// run on the middleman's one thread, so the errors a failed handshake leaves behind (a peer
// with a certificate from another CA, a port scanner) make the next SSL_get_error on a healthy
// session report SSL_ERROR_SSL, and CAF closes that connection: one bad peer drops every TLS
// link of the node. OpenSSL requires an empty queue before each of these calls; these
// definitions interpose on libssl's (the executable's symbols come first in the dynamic
// lookup), empty the queue, and call the real function. Callers that already clear it (Asio)
// are unaffected.
// TODO(caf-upgrade): remove with CAF 0.18+, whose session clears the queue itself.

#include <dlfcn.h>

#include <cstdlib>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class F>
F real(const char* name) {
  auto f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
  // Without libssl in the process nothing could have called us; abort loudly rather than jump
  // to null.
  if (f == nullptr) std::abort();
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto f = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return f(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto f = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return f(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return f(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return f(ssl);
}

} // extern "C"

namespace manifold::supervision {
extern const bool openssl_error_queue_cleared = true;
}
