// OpenSSL 3 (Debian: libssl-dev) for TLS in the worker and in the WebSocket client. Swift cannot
// call OpenSSL's function-like macros (SSL_CTX_set_min_proto_version, SSL_set_tlsext_host_name,
// BIO_set_mem_eof_return, ...) nor write its C callbacks comfortably; these wrappers do.
#ifndef SHOAL_COPENSSL_SHIM_H
#define SHOAL_COPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

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

/// The 80 bytes of session-ticket keys (name, HMAC and AES keys) every worker shares, so a
/// client resumes whichever worker its reconnect lands on.
static inline int shoal_ssl_ctx_set_ticket_keys(SSL_CTX *ctx, unsigned char *keys, long length) {
    return (int)SSL_CTX_set_tlsext_ticket_keys(ctx, keys, length);
}
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
#endif
