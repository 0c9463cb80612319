// SHA-1 for Sec-WebSocket-Accept through libcrypto's low-level functions. OpenSSL 3 marks them
// deprecated in favour of EVP, but the EVP path fetches the digest from a provider: the first
// handshake of every worker then initializes OpenSSL's library context and provider machinery,
// about 2.3 MB of pages per process (230 B per connection of a fresh worker with 10,000 clients).
// The low-level path touches about 160 KB. The deprecation is silenced here, and only here.
#ifndef SHOAL_COPENSSL_SHA1_H
#define SHOAL_COPENSSL_SHA1_H
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <openssl/sha.h>

/// The 20-byte SHA-1 digest of `length` bytes at `data`; returns 1 on success.
static inline int shoal_sha1(const void *data, size_t length, unsigned char digest[20]) {
    SHA_CTX context;
    return SHA1_Init(&context) && SHA1_Update(&context, data, length) && SHA1_Final(digest, &context);
}
#pragma GCC diagnostic pop
#endif
