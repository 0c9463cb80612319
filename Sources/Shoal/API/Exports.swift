// Types from ShoalWire and ShoalTLS that appear in the public API, re-exported so users import only Shoal.
@_exported public import struct ShoalWire.HTTPHeaders
@_exported public import struct ShoalWire.OriginAllowList
@_exported public import struct ShoalWire.OriginPatternError
@_exported public import struct ShoalWire.AddressRange
@_exported public import struct ShoalWire.TrustedProxies
@_exported public import struct ShoalRedis.RedisURL
@_exported public import struct ShoalTLS.TLSIdentity
@_exported public import struct ShoalTLS.TLSError
