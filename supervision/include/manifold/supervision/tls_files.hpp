#pragma once

#include <string>
#include <vector>

#include "manifold/actors/model.hpp"

namespace manifold::supervision {

/// Loads `tls`'s certificate chain, private key and CA file into a scratch OpenSSL context the
/// way CAF's openssl module will at the first connection, and says what is wrong with them: one
/// line per problem, naming the config key and the file (`cluster.tls.key '/etc/k.pem': not a PEM
/// private key (OpenSSL: no start line)`), including a key that does not match the certificate.
/// Empty when the files are usable or TLS is off. CAF throws from its I/O thread when they are
/// not, which ends the process, so a node checks them before it publishes.
std::vector<std::string> check_tls_files(const cluster_tls_config& tls);

} // namespace manifold::supervision
