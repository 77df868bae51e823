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
// Composite macros Swift cannot import.
static const int PCL_EVP_PKEY_PUBLIC_KEY = EVP_PKEY_PUBLIC_KEY;
static const unsigned long PCL_XN_FLAG_RFC2253 = XN_FLAG_RFC2253;
#endif
