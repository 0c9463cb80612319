// zlib (Debian: zlib1g-dev) for permessage-deflate (RFC 7692). Swift cannot call the
// deflateInit2/inflateInit2 macros, which pass the library version and stream size; these
// wrappers do it for them.
#ifndef SHOAL_CZLIB_SHIM_H
#define SHOAL_CZLIB_SHIM_H
#include <zlib.h>

static inline int shoal_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int shoal_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
#endif
