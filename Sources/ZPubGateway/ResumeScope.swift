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
    /// The prefix is one the control protocol carries (`carried`): a client of "\u{301}a" (a
    /// combining mark first) asks for everything, and gets only what is under its own prefix
    /// (`BrokerLink` filters what it delivers).
    static func snapshotPrefix(for wanted: [[UInt8]], cached: [[UInt8]]?) -> [UInt8] {
        guard let cached else { return carried(longestCommonPrefix(wanted)) }
        let overlapping = overlap(of: wanted, with: cached)
        return overlapping.isEmpty ? BrokerState.internalPrefix : carried(longestCommonPrefix(overlapping))
    }

    /// A SNAPSHOT asked under `asked`, chosen with the cache's prefixes as the gateway knew
    /// them, and whose reply names them as `cached`: when the reply lacks values that the client
    /// of `wanted` wants (a reload added a cached prefix: `asked` was `$zpub/`, or too narrow),
    /// the prefix to ask again under; nil when the reply has them all. Asked again, the reply
    /// has them all (every prefix of the overlap starts with `snapshotPrefix`), unless the
    /// cache's prefixes changed once more meanwhile.
    static func snapshotPrefixToRedo(asked: [UInt8], for wanted: [[UInt8]], cached: [[UInt8]]) -> [UInt8]? {
        // The reply holds every cached value under `asked`; each overlap is cached as a whole.
        let missed = overlap(of: wanted, with: cached).contains { !$0.starts(with: asked) }
        return missed ? snapshotPrefix(for: wanted, cached: cached) : nil
    }

    // MARK: What the control protocol carries

    /// Whether the control protocol carries `prefix` unchanged as a request's last argument.
    /// A request is UTF-8 text; the prefix is everything after the one space before it, and
    /// trailing newlines are dropped (docs/control-protocol.md; since 2026-12-08 a leading
    /// space is carried too: it was dropped with the separator, " a" arriving as "a"). So a
    /// prefix that is not UTF-8 or ends with a newline reaches the broker as another prefix,
    /// and so does one whose first character joins the space before it into one character (a
    /// combining mark: the broker splits its arguments by characters).
    static func travelsExactly(_ prefix: [UInt8]) -> Bool {
        guard let text = String(validating: prefix, as: UTF8.self) else { return false }
        guard let first = text.unicodeScalars.first else { return true }
        var afterSpace = " "
        afterSpace.unicodeScalars.append(first)
        return afterSpace.count == 2 && text.last?.isNewline != true
    }

    /// The longest prefix of `prefix` that the control protocol carries exactly
    /// (`travelsExactly`): the broker reads under it, which holds all that `prefix` wants and
    /// maybe more, so what comes back is filtered by the client's own prefixes. A prefix
    /// starting with a combining mark is carried as the empty prefix.
    static func carried(_ prefix: [UInt8]) -> [UInt8] {
        // Up to the first byte that is not UTF-8, then without trailing newlines: a longer
        // start would hold invalid bytes or end with a newline.
        var valid = 0
        var parser = Unicode.UTF8.ForwardParser()
        var bytes = prefix.makeIterator()
        while case .valid(let scalar) = parser.parseScalar(from: &bytes) { valid += scalar.count }
        var text = String(decoding: prefix[..<valid], as: UTF8.self)
        while text.last?.isNewline == true { text.removeLast() }
        let start = Array(text.utf8)
        // What remains can fail only by its first character, which every non-empty start shares.
        return travelsExactly(start) ? start : []
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
