/// A last value an upstream zpubd sends a downstream zpubd as it subscribes (`[last_value]
/// on_subscribe`), wrapped: `[$zpub/value/<digest><stored ms>, topic, payload...]`, so that the
/// downstream can tell it from a new message, and drop it when its own cache holds that value,
/// or one stored later.
///
/// Sent plain (as to any other subscriber), it reached the downstream's subscribers as a new
/// message, and the downstream's history kept it again, every time the downstream subscribed
/// upstream to a prefix: a subscriber of the downstream got a value it already had, twice
/// (docs/topologies.md). Told apart by its digest alone, a value the downstream held a newer
/// one of (an upstream restarted with an older value; the downstream's own publishers) went
/// out as news and set the downstream back (a walkthrough): the time the upstream stored it
/// is compared with the downstream's own entry's, on the wall clock of each.
///
/// A downstream zpubd says it understands the wrapping in its XSUB's ZMTP metadata
/// (`metadata`), and subscribes its upstreams to `prefix`, so that a wrapped value matches its
/// connection; an upstream wraps values for those peers only, so either side may be older.
public enum UpstreamValue {
    /// The ZMTP metadata property a downstream zpubd's XSUB sends (libzmq's ZMQ_METADATA).
    public static let property = "X-ZPub-Values"
    /// ZMQ_METADATA's value: the property and its value.
    public static let metadata = "\(property):1"

    /// The wrapped message's first frame starts with this; the value's digest and the time
    /// the upstream stored it follow, 16 hex digits each.
    public static let prefix = Array("$zpub/value/".utf8)

    /// Fixed: the two brokers must agree (the tables' keys are drawn per process).
    private static let key = SipHash.Key(k0: 0x7a70_7562_7661_6c75, k1: 0x6520_6469_6765_7374)

    /// The digest of a value in `FrameCodec`'s layout (a cache entry's `encoded`).
    public static func digest(encoded: UnsafeRawBufferPointer) -> UInt64 {
        SipHash.hash13(encoded, key: key)
    }

    /// The whole message an upstream sends a downstream zpubd for `frames`, a cached value
    /// stored at `storedMilliseconds` (wall clock).
    public static func wrapped(_ frames: [[UInt8]], storedMilliseconds: UInt64) -> [[UInt8]] {
        let digest = FrameCodec.encode(frames).withUnsafeBytes { Self.digest(encoded: $0) }
        return [prefix + Hex.fixedWidth(digest) + Hex.fixedWidth(storedMilliseconds)] + frames
    }

    /// What a wrapped message's first frame carries; nil when `frame` is not one.
    public static func header(inFirstFrame frame: UnsafeRawBufferPointer) -> (
        digest: UInt64, storedMilliseconds: UInt64
    )? {
        guard frame.count == prefix.count + 32, frame.starts(with: prefix) else { return nil }
        guard let digest = Hex.number(frame[prefix.count..<(prefix.count + 16)]),
            let stored = Hex.number(frame[(prefix.count + 16)...])
        else { return nil }
        return (digest, stored)
    }

    /// The size of a wrapped message's first frame.
    public static let firstFrameSize = prefix.count + 32
}
