// hiredis 0.14 (Debian: libhiredis-dev) for the Redis link between Shoal instances: its async API
// (the worker's own loop says when the socket is ready, hiredis reads, writes and parses RESP).
// Only Sources/ShoalRedis/HiredisConnection.swift imports this module.
#ifndef SHOAL_CHIREDIS_SHIM_H
#define SHOAL_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <string.h>

/// The reply's element `i` (an array reply's entries), or NULL when out of range.
static inline redisReply *shoal_redis_element(redisReply *reply, size_t i) {
    return reply != NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements ? reply->element[i] : NULL;
}

/// True when a subscriber's reply is a published message (["message", channel, payload]), not
/// the subscription's acknowledgement; `*payload` then points at its bytes.
static inline int shoal_redis_message(redisReply *reply, const char **payload, size_t *length) {
    redisReply *kind = shoal_redis_element(reply, 0), *body = shoal_redis_element(reply, 2);
    if (reply->elements != 3 || kind == NULL || body == NULL) return 0;
    if (kind->type != REDIS_REPLY_STRING || kind->len != 7 || memcmp(kind->str, "message", 7) != 0) return 0;
    if (body->type != REDIS_REPLY_STRING) return 0;
    *payload = body->str;
    *length = body->len;
    return 1;
}
#endif
