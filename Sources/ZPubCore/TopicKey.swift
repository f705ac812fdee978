/// A topic's length and two words of its bytes, read once per message: what the forwarding
/// loop compares with the previous message's topic and what `TopicIndexCache` hashes and
/// stores, so that neither has to reach into the topic table's keys.
///
/// Up to 16 bytes, the two words hold every byte (two overlapping loads from 4 bytes up, three
/// single bytes below, as `SipHash` reads a tail), so equal keys are equal topics (`isExact`). A longer topic keeps its
/// first and last 8 bytes: equal keys are then only candidates, confirmed against the table.
/// Topics are mostly short (`t.00042`, `price.EURUSD`), and the table's keys live in one byte
/// array behind two offsets and a bounds check: comparing there cost some 30 instructions a
/// message (callgrind), comparing two words costs three.
@usableFromInline
struct TopicKey: Equatable, Sendable {
    /// The most bytes a key holds whole.
    @usableFromInline static let exactLength = 16

    @usableFromInline let count: Int
    @usableFromInline let head: UInt64
    @usableFromInline let tail: UInt64

    /// Matches no topic: for "no previous topic". (Computed: a stored static is reached
    /// through a once-check on every use.)
    @inlinable static var none: TopicKey { TopicKey(count: -1, head: 0, tail: 0) }

    @usableFromInline
    init(count: Int, head: UInt64, tail: UInt64) {
        self.count = count
        self.head = head
        self.tail = tail
    }

    @inlinable @inline(__always)
    init(_ topic: UnsafeRawBufferPointer) {
        let count = topic.count
        self.count = count
        guard let base = topic.baseAddress, count > 0 else {
            (head, tail) = (0, 0)
            return
        }
        if count >= 8 {
            head = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
            tail = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self))
        } else if count >= 4 {
            // Two 4-byte loads, overlapping below 8 bytes.
            let low = UInt32(littleEndian: base.loadUnaligned(as: UInt32.self))
            let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self))
            head = UInt64(low) | UInt64(high) << 32
            tail = 0
        } else {
            // The first, middle and last of 1 to 3 bytes (some of them the same byte).
            let first = UInt64(base.load(as: UInt8.self))
            let middle = UInt64(base.load(fromByteOffset: count >> 1, as: UInt8.self))
            let last = UInt64(base.load(fromByteOffset: count &- 1, as: UInt8.self))
            head = first | middle << 8 | last << 16
            tail = 0
        }
    }

    @inlinable @inline(__always)
    static func == (left: TopicKey, right: TopicKey) -> Bool {
        left.count == right.count && left.head == right.head && left.tail == right.tail
    }

    /// Whether equal keys mean equal topics.
    @inlinable @inline(__always)
    var isExact: Bool { count <= Self.exactLength }
}
