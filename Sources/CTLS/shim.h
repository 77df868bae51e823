#ifndef PCL_CTLS_SHIM_H
#define PCL_CTLS_SHIM_H
// OpenSSL libssl: the router's TLS client for fetching OIDC discovery
// documents and JWKS. The helpers below stand in for macros Swift cannot
// import.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static inline long pcl_ssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline long pcl_ssl_ctx_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
#endif
