import ZPubCore
/// What a resuming client's catch-up asks the broker for: only what the client subscribed to.
/// SNAPSHOT, REPLAY and HISTORY each take one prefix, and the broker filters by it; asking
/// with the empty prefix for a client of one small prefix made every reconnection read (and
/// page through) the whole cache or the whole history, only to throw nearly all of it away.
enum ResumeScope {
    /// What a client of `wanted` wants of what history (or the cache) keeps under `kept`: for
    /// each pair that overlaps, the longer of the two (a client of `orders.` with history's
    /// `orders.` reads `orders.`; a client of `o` reads history's `orders.`; a client of
    /// `orders.eu.` reads `orders.eu.`). None of them under another, so that no message is read
    /// twice; empty when nothing kept is wanted. Live messages before a catch-up's marker on
    /// topics under these are in its reply.
    static func overlap(of wanted: [[UInt8]], with kept: [[UInt8]]) -> [[UInt8]] {
        var overlaps: [[UInt8]] = []
        for history in kept {
            for prefix in wanted {
                if history.starts(with: prefix) {
                    overlaps.append(history)
                } else if prefix.starts(with: history) {
                    overlaps.append(prefix)
                }
            }
        }
        return outermost(overlaps)
    }

    /// The one prefix a SNAPSHOT for a client of `wanted` asks for: the longest prefix common to
    /// what it wants of the cache. `cached` (the cache's prefixes, once a snapshot reply has told
    /// them) narrows `wanted` to what the cache can hold: a client of `state.a` and `chat.`
    /// with only `state.` cached asks for `state.a`, not for everything.
    /// When the cache is known to hold nothing the client wants, the snapshot asks under
    /// zpubd's own `$zpub/`, which is never cached: the marker alone, not the whole cache (the
    /// longest common prefix of `a.` and `b.` is everything).
    static func snapshotPrefix(for wanted: [[UInt8]], cached: [[UInt8]]?) -> [UInt8] {
        guard let cached else { return longestCommonPrefix(wanted) }
        let overlapping = overlap(of: wanted, with: cached)
        return overlapping.isEmpty ? BrokerState.internalPrefix : longestCommonPrefix(overlapping)
    }

    /// `prefixes` without duplicates and without any that starts with another of them (its
    /// messages are under the other one already), in their first order.
    static func outermost(_ prefixes: [[UInt8]]) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for (index, prefix) in prefixes.enumerated() {
            let coveredByAnother = prefixes.enumerated().contains { other, shorter in
                other != index && prefix.starts(with: shorter)
                    && (shorter.count < prefix.count || other < index)
            }
            if !coveredByAnother { result.append(prefix) }
        }
        return result
    }

    static func longestCommonPrefix(_ prefixes: [[UInt8]]) -> [UInt8] {
        guard var common = prefixes.first else { return [] }
        for prefix in prefixes.dropFirst() {
            let length = zip(common, prefix).prefix { $0 == $1 }.count
            common.removeLast(common.count - length)
        }
        return common
    }
}
