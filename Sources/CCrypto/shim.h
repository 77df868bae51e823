#ifndef PCL_CCRYPTO_SHIM_H
#define PCL_CCRYPTO_SHIM_H
// OpenSSL libcrypto: digests, HMAC, AEAD, randomness, constant-time compare,
// and public keys for JWS (RSA, RSA-PSS, ECDSA) built from JWK parameters.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/bn.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/bio.h>
// SHA-256 through the low-level interface: 85 ns for a 44-byte token here,
// against 220 ns through EVP_Digest with a fetched EVP_MD (provider dispatch
// and a context made and freed per call) and 650 ns through SHA256(), which
// fetches the algorithm each time. The low-level functions are deprecated in
// OpenSSL 3 but still built, tested and SHA-NI accelerated; if a future
// OpenSSL drops them, Crypto.sha256 falls back to its EVP path.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline int pcl_sha256(const void *data, size_t count, unsigned char *out) {
    SHA256_CTX context;
    if (SHA256_Init(&context) != 1) return 0;
    if (SHA256_Update(&context, data, count) != 1) return 0;
    return SHA256_Final(out, &context);
}
#pragma clang diagnostic pop
// Composite macros Swift cannot import.
static const int PCL_EVP_PKEY_PUBLIC_KEY = EVP_PKEY_PUBLIC_KEY;
static const unsigned long PCL_XN_FLAG_RFC2253 = XN_FLAG_RFC2253;
#endif
