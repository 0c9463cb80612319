// OpenSSL 3 (Debian: libssl-dev) for TLS in the worker and in the WebSocket client. Swift cannot
// call OpenSSL's function-like macros (SSL_CTX_set_min_proto_version, SSL_set_tlsext_host_name,
// BIO_set_mem_eof_return, ...) nor write its C callbacks comfortably; these wrappers do.
#ifndef SHOAL_COPENSSL_SHIM_H
#define SHOAL_COPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

static inline int shoal_ssl_ctx_set_min_tls12(SSL_CTX *ctx) { return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline uint64_t shoal_ssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t shoal_ssl_op_no_compression(void) { return SSL_OP_NO_COMPRESSION; }
/// Idle connections give their 16 KiB read and write buffers back (memory per idle wss:// client).
static inline void shoal_ssl_ctx_release_buffers(SSL_CTX *ctx) { SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); }
static inline int shoal_ssl_filetype_pem(void) { return SSL_FILETYPE_PEM; }
static inline int shoal_ssl_verify_peer(void) { return SSL_VERIFY_PEER; }
static inline int shoal_ssl_verify_none(void) { return SSL_VERIFY_NONE; }
static inline int shoal_tls12_version(void) { return TLS1_2_VERSION; }
static inline int shoal_tls13_version(void) { return TLS1_3_VERSION; }
static inline int shoal_ssl_ctx_set_max_version(SSL_CTX *ctx, int version) { return (int)SSL_CTX_set_max_proto_version(ctx, version); }

static inline int shoal_ssl_ctx_enable_client_session_cache(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}

/// A memory BIO that reports "retry" (not end of file) when it is empty: the loop feeds it later.
static inline BIO *shoal_bio_new_mem(void) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio) BIO_set_mem_eof_return(bio, -1);
    return bio;
}

/// The error OpenSSL queues when a private key does not match the certificate already loaded.
static inline int shoal_err_is_key_mismatch(unsigned long code) {
    return ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH;
}

static inline int shoal_ssl_set_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

/// ALPN on the server: http/1.1 is the one protocol spoken (a WebSocket upgrade is HTTP/1.1).
/// A client that offers ALPN without it gets the no_application_protocol alert (RFC 7301 §3.2).
static int shoal_alpn_select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                    const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}
static inline void shoal_ssl_ctx_select_http11(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, shoal_alpn_select_http11, NULL); }

/// SNI: the server's first context answers every name; `others` (owned by the caller for the life
/// of `ctx`) hold further certificates, and a ClientHello naming a host one of them covers
/// (X509_check_host: SAN and wildcards as browsers match them) is switched to it.
typedef struct { SSL_CTX **contexts; int count; } shoal_sni_table;
static int shoal_sni_select(SSL *ssl, int *alert, void *arg) {
    (void)alert;
    const shoal_sni_table *table = (const shoal_sni_table *)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !table) return SSL_TLSEXT_ERR_NOACK;
    for (int i = 0; i < table->count; i++) {
        X509 *leaf = SSL_CTX_get0_certificate(table->contexts[i]);
        if (leaf && X509_check_host(leaf, name, strlen(name), 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, table->contexts[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}
static inline void shoal_ssl_ctx_set_sni(SSL_CTX *ctx, shoal_sni_table *table) {
    SSL_CTX_set_tlsext_servername_callback(ctx, shoal_sni_select);
    SSL_CTX_set_tlsext_servername_arg(ctx, table);
}
/// Why a TLS operation failed, in the few classes /metrics labels (TLSFailureKind): 1 plain HTTP
/// sent to the TLS port, 2 a protocol version we refuse, 3 no cipher in common, 4 no common ALPN,
/// 5 the peer sent an alert, 0 anything else (malformed records, garbage).
static inline int shoal_tls_failure_kind(unsigned long code) {
    if (ERR_GET_LIB(code) != ERR_LIB_SSL) return 0;
    int reason = ERR_GET_REASON(code);
    switch (reason) {
    case SSL_R_HTTP_REQUEST: case SSL_R_HTTPS_PROXY_REQUEST: return 1;
    case SSL_R_UNSUPPORTED_PROTOCOL: case SSL_R_VERSION_TOO_LOW: case SSL_R_NO_PROTOCOLS_AVAILABLE: return 2;
    case SSL_R_NO_SHARED_CIPHER: return 3;
    case SSL_R_NO_APPLICATION_PROTOCOL: return 4;
    default: return reason >= SSL_AD_REASON_OFFSET ? 5 : 0;
    }
}
/// Session tickets every worker can open, with keys that rotate: the supervisor draws one 32-byte
/// secret at start and gives it to every worker (and every later generation); the keys of period
/// p = (time + clock_offset) / period_seconds are HMAC-SHA256(secret, tag || p). A ticket is made
/// with the current period's keys and opened with those or the previous period's (then renewed),
/// so a ticket resumes for one to two periods. The secret never leaves the processes' memory and
/// environment. `clock_offset` moves the clock for tests.
typedef struct { unsigned char secret[32]; int64_t period_seconds; int64_t clock_offset; } shoal_ticket_keys;

static inline int shoal_ticket_derive(const shoal_ticket_keys *keys, int64_t period, unsigned char tag,
                                      unsigned char out[32]) {
    unsigned char message[9];
    message[0] = tag;
    for (int i = 0; i < 8; i++) message[1 + i] = (unsigned char)((uint64_t)period >> (56 - 8 * i));
    size_t length = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, keys->secret, sizeof keys->secret, message, sizeof message,
                     out, 32, &length) != NULL && length == 32;
}

static int shoal_ticket_callback(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cipher,
                                 EVP_MAC_CTX *mac, int encrypt) {
    const shoal_ticket_keys *keys = (const shoal_ticket_keys *)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    if (!keys) return -1;
    int64_t now = (int64_t)time(NULL) + keys->clock_offset;
    int64_t current = now / keys->period_seconds;
    unsigned char name[32], aes[32], hmac[32];
    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                             OSSL_PARAM_construct_end() };
    for (int64_t period = current; period >= current - 1; period--) {
        if (!shoal_ticket_derive(keys, period, 'n', name)) return -1;
        if (!encrypt && memcmp(key_name, name, 16) != 0) continue;
        if (!shoal_ticket_derive(keys, period, 'a', aes) || !shoal_ticket_derive(keys, period, 'h', hmac)) return -1;
        if (encrypt) {
            memcpy(key_name, name, 16);
            if (RAND_bytes(iv, 16) != 1) return -1;
            if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, aes, iv) != 1) return -1;
        } else if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, aes, iv) != 1) {
            return -1;
        }
        if (EVP_MAC_CTX_set_params(mac, params) != 1 || EVP_MAC_init(mac, hmac, sizeof hmac, NULL) != 1) return -1;
        return (encrypt || period == current) ? 1 : 2;  /* 2: valid, but issue a ticket with today's keys */
    }
    return 0;  /* unknown or expired keys: a full handshake */
}

/// `keys` must outlive `ctx` (TLSContext owns both).
static inline int shoal_ssl_ctx_set_ticket_keys_rotating(SSL_CTX *ctx, shoal_ticket_keys *keys) {
    if (SSL_CTX_set_ex_data(ctx, 0, keys) != 1) return 0;
    return (int)SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, shoal_ticket_callback);
}

/// Whether this OpenSSL was built with kernel TLS support (the kernel must also offer the "tls" ULP).
static inline int shoal_openssl_has_ktls(void) {
#ifndef OPENSSL_NO_KTLS
    return 1;
#else
    return 0;
#endif
}
#endif
