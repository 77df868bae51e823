#ifndef PCL_CCRYPTO_SHIM_H
#define PCL_CCRYPTO_SHIM_H
// OpenSSL libcrypto: digests, HMAC, AEAD, randomness, constant-time compare.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#endif
