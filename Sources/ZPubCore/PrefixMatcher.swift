/// A list of topic prefixes, matched against a topic on the forwarding thread for every
/// message: which history prefix keeps it, whether the last-value cache copies it.
///
/// The prefixes' bytes lie one after the other in one buffer, with where each ends: one buffer
/// to compare against, with no per-prefix array to retain.
public struct PrefixMatcher: Sendable, Equatable {
    /// Whether subscriptions to `a` and to `b` can match a common topic: one starts with the
    /// other. (A token's rule and a subscription, a kept prefix and a replay's, ...)
    @inlinable
    public static func overlap<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        a.starts(with: b) || b.starts(with: a)
    }

    @usableFromInline let flat: [UInt8]
    @usableFromInline let ends: [Int]

    public init(_ prefixes: [[UInt8]]) {
        flat = prefixes.flatMap { $0 }
        var end = 0
        ends = prefixes.map {
            end += $0.count
            return end
        }
    }

    public var isEmpty: Bool { ends.isEmpty }

    /// The length of the first prefix that `topic` starts with, or nil.
    ///
    /// Mutating although it changes nothing: the forwarding loop keeps its matchers in stored
    /// `var`s, and a non-mutating call on one copies the struct that holds it out first,
    /// retaining and releasing its arrays for every message (callgrind: 8 calls into the
    /// runtime per kept message for history's prefixes; ~375 instructions per message for the
    /// last-value cache's, which was copied whole). A mutating call works in place.
    @inlinable @inline(__always)
    public mutating func matchLength(_ topic: UnsafeRawBufferPointer) -> Int? {
        flat.withUnsafeBytes { all in
            ends.withUnsafeBufferPointer { ends in
                var start = 0
                for end in ends {
                    let length = end - start
                    if topic.count >= length && Self.equal(topic.baseAddress, all.baseAddress, start, length) {
                        return length
                    }
                    start = end
                }
                return nil
            }
        }
    }

    /// Whether `length` bytes of `topic` equal the prefix at `start` in `flat`.
    @inlinable @inline(__always)
    static func equal(
        _ topic: UnsafeRawPointer?, _ flat: UnsafeRawPointer?, _ start: Int, _ length: Int
    ) -> Bool {
        guard length > 0, let topic, let flat else { return true }
        return RawBytes.equal(topic, flat + start, count: length)
    }
}
