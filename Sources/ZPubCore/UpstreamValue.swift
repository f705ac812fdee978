/// A last value an upstream zpubd sends a downstream zpubd as it subscribes (`[last_value]
/// on_subscribe`), wrapped: `[$zpub/value/<digest>, topic, payload...]`, so that the
/// downstream can tell it from a new message, and drop it when its own cache holds that value.
///
/// Sent plain (as to any other subscriber), it reached the downstream's subscribers as a new
/// message, and the downstream's history kept it again, every time the downstream subscribed
/// upstream to a prefix: a subscriber of the downstream got a value it already had, twice
/// (docs/topologies.md). A value the downstream's cache lacks, or holds another value of (it
/// cannot tell which is newer), is forwarded as before: news there.
///
/// A downstream zpubd says it understands the wrapping in its XSUB's ZMTP metadata
/// (`metadata`); an upstream wraps values for those peers only, so either side may be older.
public enum UpstreamValue {
    /// The ZMTP metadata property a downstream zpubd's XSUB sends (libzmq's ZMQ_METADATA).
    public static let property = "X-ZPub-Values"
    /// ZMQ_METADATA's value: the property and its value.
    public static let metadata = "\(property):1"

    /// The wrapped message's first frame starts with this; the value's digest, 16 hex digits,
    /// follows.
    public static let prefix = Array("$zpub/value/".utf8)

    /// Fixed: the two brokers must agree (the tables' keys are drawn per process).
    private static let key = SipHash.Key(k0: 0x7a70_7562_7661_6c75, k1: 0x6520_6469_6765_7374)

    /// The digest of a value in `FrameCodec`'s layout (a cache entry's `encoded`).
    public static func digest(encoded: UnsafeRawBufferPointer) -> UInt64 {
        SipHash.hash13(encoded, key: key)
    }

    /// The whole message an upstream sends a downstream zpubd for `frames`, a cached value.
    public static func wrapped(_ frames: [[UInt8]]) -> [[UInt8]] {
        let digest = FrameCodec.encode(frames).withUnsafeBytes { Self.digest(encoded: $0) }
        var first = prefix
        first.append(contentsOf: Array(String(digest, radix: 16).utf8).leftPadded(to: 16))
        return [first] + frames
    }

    /// The digest a wrapped message's first frame carries; nil when `frame` is not one.
    public static func digest(inFirstFrame frame: UnsafeRawBufferPointer) -> UInt64? {
        guard frame.count == prefix.count + 16, frame.starts(with: prefix) else { return nil }
        var digest: UInt64 = 0
        for byte in frame[prefix.count...] {
            guard let value = Hex.value(of: byte) else { return nil }
            digest = digest << 4 | UInt64(value)
        }
        return digest
    }
}

extension Array where Element == UInt8 {
    fileprivate func leftPadded(to count: Int) -> [UInt8] {
        Array(repeating: UInt8(ascii: "0"), count: Swift.max(0, count - self.count)) + self
    }
}
