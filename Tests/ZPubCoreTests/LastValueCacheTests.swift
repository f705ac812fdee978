import XCTest

@testable import ZPubCore

final class LastValueCacheTests: XCTestCase {
    private func cache(maxEntries: Int = 100, maxBytes: Int = 1 << 20, maxAge: UInt64 = 0) -> LastValueCache {
        LastValueCache(
            prefixes: [Array("s.".utf8)], maxEntries: maxEntries, maxBytes: maxBytes, maxAgeMilliseconds: maxAge)
    }

    private func message(_ parts: String...) -> [[UInt8]] { parts.map { Array($0.utf8) } }

    func testCoversOnlyConfiguredPrefixes() {
        var lastValues = cache()
        XCTAssertTrue(Array("s.x".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertFalse(Array("t.x".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertFalse(Array("s".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertTrue(lastValues.mayHaveValues(for: Array("s.x".utf8)))
        XCTAssertTrue(lastValues.mayHaveValues(for: []), "a subscription to everything covers s.")
        XCTAssertFalse(lastValues.mayHaveValues(for: Array("t".utf8)))
    }

    /// `covers` matches through a copy of the prefixes made for the forwarding loop: a reload
    /// that sets new prefixes must reach it.
    func testCoversFollowsPrefixesSetLater() {
        var lastValues = cache()
        lastValues.prefixes = [Array("state.long.prefix.x".utf8), Array("t".utf8)]
        XCTAssertFalse(Array("s.x".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertTrue(Array("t.x".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertTrue(Array("state.long.prefix.x1".utf8).withUnsafeBytes { lastValues.covers($0) })
        XCTAssertFalse(Array("state.long.prefix.".utf8).withUnsafeBytes { lastValues.covers($0) })
        lastValues.prefixes = [[]]
        XCTAssertTrue(Array("anything".utf8).withUnsafeBytes { lastValues.covers($0) }, "the empty prefix covers all")
        lastValues.prefixes = []
        XCTAssertFalse(Array("t.x".utf8).withUnsafeBytes { lastValues.covers($0) })
    }

    /// A reload that drops a prefix drops its values: they were served as current while their
    /// updates were no longer cached (a walkthrough). The others stay, updatable, in order.
    func testValuesNoPrefixCoversAnyMoreAreDropped() {
        var lastValues = cache()
        lastValues.prefixes = [Array("s.".utf8), Array("c.".utf8)]
        for topic in ["s.a", "c.a", "s.b", "c.b", "s.c"] { lastValues.store(message(topic, "1"), nowMilliseconds: 1) }
        lastValues.prefixes = [Array("c.".utf8)]
        XCTAssertEqual(lastValues.dropUncovered(), 3)
        XCTAssertEqual(lastValues.count, 2)
        XCTAssertEqual(
            lastValues.entries(under: [], nowMilliseconds: 1).map(\.frames), [message("c.a", "1"), message("c.b", "1")])
        lastValues.store(message("c.a", "2"), nowMilliseconds: 2)
        XCTAssertEqual(
            lastValues.entries(under: [], nowMilliseconds: 2).map(\.frames), [message("c.b", "1"), message("c.a", "2")])
        XCTAssertEqual(lastValues.dropUncovered(), 0)
        // The order of updates survived the drop: lower limits evict the oldest left.
        lastValues.maxEntries = 1
        lastValues.applyLimits()
        XCTAssertEqual(lastValues.entries(under: [], nowMilliseconds: 2).map(\.frames), [message("c.a", "2")])
    }

    func testKeepsTheLastMessageWholeAndDeletesOnEmptyPayload() {
        var lastValues = cache()
        lastValues.store(message("s.a", "1"), nowMilliseconds: 1)
        lastValues.store(message("s.a", "2", "extra"), nowMilliseconds: 2)
        XCTAssertEqual(
            lastValues.entry(for: Array("s.a".utf8), nowMilliseconds: 3)?.frames, message("s.a", "2", "extra"))
        XCTAssertEqual(lastValues.totalBytes, 4 + 3 + 4 + 1 + 4 + 5, "each frame with its 4-byte length")
        lastValues.store(message("s.a", ""), nowMilliseconds: 4)
        XCTAssertNil(lastValues.entry(for: Array("s.a".utf8), nowMilliseconds: 5))
        lastValues.store(message("s.b", "x"), nowMilliseconds: 6)
        lastValues.store(message("s.b"), nowMilliseconds: 7)
        XCTAssertEqual(lastValues.count, 0)
        XCTAssertEqual(lastValues.deletions, 2)
        XCTAssertEqual(lastValues.totalBytes, 0)
    }

    func testNewestUnderAPrefixAndSnapshotsInUpdateOrder() {
        var lastValues = cache()
        for (topic, value) in [("s.a", "1"), ("s.b", "2"), ("s.c", "3"), ("s.a", "4")] {
            lastValues.store(message(topic, value), nowMilliseconds: 1)
        }
        XCTAssertEqual(lastValues.newest(under: Array("s.".utf8), nowMilliseconds: 1)?.frames, message("s.a", "4"))
        XCTAssertEqual(lastValues.newest(under: Array("s.b".utf8), nowMilliseconds: 1)?.frames, message("s.b", "2"))
        XCTAssertNil(lastValues.newest(under: Array("s.z".utf8), nowMilliseconds: 1))
        XCTAssertEqual(
            lastValues.entries(under: Array("s.".utf8), nowMilliseconds: 1).map(\.frames),
            [message("s.b", "2"), message("s.c", "3"), message("s.a", "4")])
        XCTAssertEqual(lastValues.lastSequence, 4)
    }

    func testEvictsTheOldestUpdatesFirstWithinCountAndBytes() {
        var lastValues = cache(maxEntries: 3, maxBytes: 1_000)
        for i in 0..<10 { lastValues.store(message("s.\(i)", "v"), nowMilliseconds: 1) }
        XCTAssertEqual(lastValues.count, 3)
        XCTAssertEqual(
            lastValues.entries(under: [], nowMilliseconds: 1).map { $0.frames[0] },
            [7, 8, 9].map { Array("s.\($0)".utf8) })
        XCTAssertEqual(lastValues.evictions, 7)

        var small = cache(maxEntries: 100, maxBytes: 28)
        small.store(message("s.a", "0123456789"), nowMilliseconds: 1)  // 21 bytes, frame lengths included
        small.store(message("s.b", "0123456789"), nowMilliseconds: 1)  // 42 in all: a goes
        XCTAssertEqual(small.count, 1)
        XCTAssertLessThanOrEqual(small.totalBytes, 28)
        XCTAssertNotNil(small.entry(for: Array("s.b".utf8), nowMilliseconds: 1))
    }

    func testRepeatedUpdatesOfFewTopicsKeepTheEvictionQueueBounded() {
        var lastValues = cache(maxEntries: 5)
        for i in 0..<100_000 { lastValues.store(message("s.\(i % 3)", "\(i)"), nowMilliseconds: 1) }
        XCTAssertEqual(lastValues.count, 3)
        XCTAssertEqual(lastValues.evictions, 0, "updates replace, they do not evict")
    }

    func testUpdatesAfterASequenceComeInBoundedPagesThatCoverEveryEntry() {
        var cache = cache(maxEntries: 1_000)
        for round in 0..<3 {
            for topic in 0..<1_000 { cache.store(message("s.\(topic)", "v\(round)"), nowMilliseconds: 1) }
        }
        var seen: [UInt64] = []
        var since: UInt64 = 1_500
        while true {
            let page = cache.entries(updatedAfter: since, limit: 300, maxBytes: 1 << 20, nowMilliseconds: 1)
            XCTAssertLessThanOrEqual(page.entries.count, 300)
            seen += page.entries.map(\.sequence)
            guard let last = page.entries.last?.sequence, page.more else { break }
            since = last
        }
        // Only the live entries (round 2: sequences 2,001-3,000), in order, once each.
        XCTAssertEqual(seen, Array(2_001...3_000))
        let byBytes = cache.entries(updatedAfter: 0, limit: 1_000, maxBytes: 130, nowMilliseconds: 1)
        XCTAssertEqual(byBytes.entries.count, 10, "s.0 to s.9 first, 13 bytes each with their lengths: ten fit in 130")
        XCTAssertTrue(byBytes.more)
        let one = cache.entries(updatedAfter: 0, limit: 1_000, maxBytes: 1, nowMilliseconds: 1)
        XCTAssertEqual(one.entries.count, 1, "a page holds at least one entry, however large")
    }

    /// The order of updates is a list linked through the table's indexes, which a removal
    /// reshuffles (the last entry moves into the hole). Against a plain model, under random
    /// updates, deletions, expiry and eviction by count and bytes: the same entries, values and
    /// sequences, evicted in the same order.
    func testEvictionFollowsTheOrderOfUpdatesUnderRandomChurn() {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let maxEntries = Int.random(in: 1...12, using: &generator)
            var lastValues = cache(maxEntries: maxEntries, maxBytes: 120, maxAge: 50)
            // topic -> (value, sequence, stored at)
            var model: [String: (value: String, sequence: UInt64, milliseconds: UInt64)] = [:]
            var sequence: UInt64 = 0
            /// Sequences below `sequence` that nothing took (a restore may take one).
            var unused: [UInt64] = []
            var evictions: UInt64 = 0
            var now: UInt64 = 1_000
            var pageEnd: UInt64 = 0
            func evictOldest() -> UInt64 {
                var evicted: UInt64 = 0
                func bytes() -> Int { model.reduce(0) { $0 + 8 + $1.key.utf8.count + $1.value.value.utf8.count } }
                while model.count > maxEntries || bytes() > 120 {
                    let oldest = model.min { $0.value.sequence < $1.value.sequence }!.key
                    model[oldest] = nil
                    evicted += 1
                }
                return evicted
            }
            for step in 0..<2_000 {
                now += UInt64.random(in: 0...3, using: &generator)
                let topic = "s.\(Int.random(in: 0..<16, using: &generator))"
                switch Int.random(in: 0..<100, using: &generator) {
                case 0:
                    // Rarely: everything goes (a reload that turns the cache off and on).
                    lastValues.removeAll()
                    model = [:]
                case 1..<6:
                    // Put back as after a restart, or mirrored from a pair's active broker: ahead
                    // of the cache (leaving unused sequences behind), or out of order, into one of
                    // those (a backup copying the active's cache again from the start).
                    let value = String(repeating: "r", count: Int.random(in: 1...20, using: &generator))
                    let restored: UInt64
                    if let behind = unused.indices.randomElement(using: &generator), Bool.random(using: &generator) {
                        restored = unused.remove(at: behind)
                    } else {
                        let skipped = UInt64.random(in: 0...3, using: &generator)
                        unused += (0..<skipped).map { sequence + 1 + $0 }
                        sequence += skipped + 1
                        restored = sequence
                    }
                    lastValues.restore(message(topic, value), sequence: restored, storedMilliseconds: now)
                    model[topic] = (value, restored, now)
                    evictions += evictOldest()
                case 6..<15:
                    lastValues.store(message(topic, ""), nowMilliseconds: now)
                    model[topic] = nil
                case 15..<25:
                    lastValues.expire(nowMilliseconds: now)
                    let expired = model.filter { now - $0.value.milliseconds > 50 }
                    evictions += UInt64(expired.count)
                    for topic in expired.keys { model[topic] = nil }
                default:
                    let value = String(repeating: "v", count: Int.random(in: 1...20, using: &generator))
                    lastValues.store(message(topic, value), nowMilliseconds: now)
                    sequence += 1
                    model[topic] = (value, sequence, now)
                    evictions += evictOldest()
                }
                // Entries past their age are kept until `expire`, and not shown.
                let cached = lastValues.entries(under: [], nowMilliseconds: now)
                let expected = model.filter { now - $0.value.milliseconds <= 50 }
                    .sorted { $0.value.sequence < $1.value.sequence }
                guard cached.map(\.frames) == expected.map({ message($0.key, $0.value.value) }),
                    cached.map(\.sequence) == expected.map(\.value.sequence), lastValues.evictions == evictions
                else {
                    return XCTFail("round \(round), step \(step): \(cached.map(\.frames)) against \(expected)")
                }
                XCTAssertEqual(
                    lastValues.totalBytes, model.reduce(0) { $0 + 8 + $1.key.utf8.count + $1.value.value.utf8.count })
                // A pair's backup's pages: the unexpired entries updated after a sequence, found
                // by walking in from either end of the order of updates, or after the last
                // page's end, which the cache remembers. Half the time a page follows the last
                // one, a step's changes later (which may move or remove its end); half the time
                // the one after it follows at once, as a backup copying everything asks.
                let limit = Int.random(in: 1...5, using: &generator)
                func pageIsRight(after since: UInt64) -> Bool {
                    let page = lastValues.entries(
                        updatedAfter: since, limit: limit, maxBytes: 1 << 20, nowMilliseconds: now)
                    let updated = expected.filter { $0.value.sequence > since }
                    pageEnd = page.entries.last?.sequence ?? pageEnd
                    return page.entries.map(\.sequence) == updated.prefix(limit).map(\.value.sequence)
                        && page.more == (updated.count > limit)
                }
                let since =
                    Bool.random(using: &generator) ? pageEnd : UInt64.random(in: 0...sequence + 1, using: &generator)
                guard pageIsRight(after: since), Bool.random(using: &generator) || pageIsRight(after: pageEnd) else {
                    return XCTFail("round \(round), step \(step): a page after \(since) or the next one")
                }
                // What a new subscriber gets: the exact topic, or the newest unexpired entry under
                // the prefix ("s.1" covers s.1 and s.10 to s.15; "s.2" is a topic and a prefix
                // of none; "s.x" covers nothing).
                // Both ways of finding it: the newest few updates, then the table's scan.
                for prefix in ["s.", "s.1", "s.2", "s.x", topic] {
                    let newest = lastValues.newest(
                        under: Array(prefix.utf8), nowMilliseconds: now,
                        updatesFirst: Int.random(in: 0...4, using: &generator))
                    let wanted =
                        expected.first { $0.key == prefix }
                        ?? expected.last { $0.key.hasPrefix(prefix) }
                    guard newest?.frames == wanted.map({ message($0.key, $0.value.value) }) else {
                        return XCTFail("round \(round), step \(step), \(prefix): \(String(describing: newest?.frames))")
                    }
                }
            }
        }
    }

    /// A subscription to a prefix whose newest value is not among the newest updates scans the
    /// table once; later subscriptions to it look only at the updates since, and scan again
    /// only when what was found has gone.
    func testTheNewestUnderAPrefixIsRememberedAcrossUpdates() {
        var lastValues = cache(maxEntries: 100_000)
        for i in 0..<20_000 { lastValues.store(message("s.\(i % 2).\(i)", "v"), nowMilliseconds: 1) }
        let odd = Array("s.1.".utf8)
        func newest() -> String? {
            lastValues.newest(under: odd, nowMilliseconds: 1, updatesFirst: 0)
                .map { String(decoding: $0.frames[0], as: UTF8.self) }
        }
        XCTAssertEqual(newest(), "s.1.19999")
        XCTAssertEqual(lastValues.tableScans, 1)
        // Updates elsewhere, then one under the prefix: found along the updates since.
        for i in 0..<100 { lastValues.store(message("s.0.\(i * 2)", "w"), nowMilliseconds: 1) }
        XCTAssertEqual(newest(), "s.1.19999")
        lastValues.store(message("s.1.7", "w"), nowMilliseconds: 1)
        for i in 0..<100 { lastValues.store(message("s.0.\(i * 2)", "x"), nowMilliseconds: 1) }
        XCTAssertEqual(newest(), "s.1.7")
        XCTAssertEqual(lastValues.tableScans, 1, "no scan while what was found stays")
        // The value found is deleted: the next newest is unknown without a scan.
        lastValues.store(message("s.1.7", ""), nowMilliseconds: 1)
        XCTAssertEqual(newest(), "s.1.19999")
        XCTAssertEqual(lastValues.tableScans, 2)
        // A value put back below the last sequence is where the updates since are not.
        lastValues.restore(message("s.1.5", "r"), sequence: lastValues.lastSequence - 1, storedMilliseconds: 1)
        XCTAssertEqual(newest(), "s.1.5")
        XCTAssertEqual(lastValues.tableScans, 3)
        XCTAssertEqual(newest(), "s.1.5")
        XCTAssertEqual(lastValues.tableScans, 3)
        // Nothing under a prefix is remembered too, until something comes.
        let none = Array("s.2".utf8)
        XCTAssertNil(lastValues.newest(under: none, nowMilliseconds: 1, updatesFirst: 0))
        XCTAssertNil(lastValues.newest(under: none, nowMilliseconds: 1, updatesFirst: 0))
        XCTAssertEqual(lastValues.tableScans, 4)
        lastValues.store(message("s.2x", "y"), nowMilliseconds: 1)
        XCTAssertEqual(
            lastValues.newest(under: none, nowMilliseconds: 1, updatesFirst: 0)?.frames, message("s.2x", "y"))
        XCTAssertEqual(lastValues.tableScans, 4)
    }

    /// `expire` works at most a bounded amount per call, and finds values that expired out of
    /// the order of updates (put back with older times) within a few calls; none is served
    /// meanwhile.
    func testExpiryIsBoundedPerCallAndReachesValuesOutOfOrder() {
        let count = LastValueCache.expirySweepPerCall * 3
        var lastValues = cache(maxEntries: count * 2, maxBytes: 1 << 30, maxAge: 1_000)
        // Every third entry carries an old time behind newer ones, as a restart's restore.
        for i in 0..<count {
            lastValues.restore(
                message("s.\(i)", "v"), sequence: UInt64(i + 1), storedMilliseconds: i % 3 == 0 ? 500 : 1_800)
        }
        XCTAssertEqual(lastValues.entries(under: [], nowMilliseconds: 2_000).count, count * 2 / 3)
        XCTAssertNil(
            lastValues.newest(under: Array("s.3".utf8), nowMilliseconds: 2_000, updatesFirst: 0).flatMap {
                $0.storedMilliseconds == 500 ? $0 : nil
            })
        var calls = 0
        // Each topic removed is told (the persisted table deletes it), once.
        var told: [String] = []
        while lastValues.count > count * 2 / 3 {
            let before = lastValues.count
            lastValues.expire(nowMilliseconds: 2_000) { told.append(String(decoding: $0, as: UTF8.self)) }
            calls += 1
            XCTAssertLessThanOrEqual(
                before - lastValues.count, LastValueCache.expiryRemovalsPerCall)
            guard calls < 10 else { return XCTFail("\(lastValues.count) left after \(calls) calls") }
        }
        XCTAssertLessThanOrEqual(calls, 4, "a sweep of a few thousand a call reaches all \(count)")
        XCTAssertEqual(lastValues.evictions, UInt64(count / 3))
        XCTAssertEqual(told.sorted(), (0..<count).filter { $0 % 3 == 0 }.map { "s.\($0)" }.sorted())
        // In order, a whole cache's worth expires from the oldest end, a bounded number a call.
        let inOrder = LastValueCache.expiryRemovalsPerCall + 1_000
        var stale = cache(maxEntries: inOrder, maxBytes: 1 << 30, maxAge: 1_000)
        for i in 0..<inOrder { stale.store(message("s.\(i)", "v"), nowMilliseconds: 1_000) }
        stale.expire(nowMilliseconds: 3_000)
        XCTAssertEqual(stale.count, 1_000)
        XCTAssertTrue(stale.entries(under: [], nowMilliseconds: 3_000).isEmpty, "none served meanwhile")
        stale.expire(nowMilliseconds: 3_000)
        XCTAssertEqual(stale.count, 0)
    }

    /// A value stamped later than the clock (a peer's whose clock is ahead; or stored before
    /// the clock stepped back) is new, not expired; and what a scan found is not trusted after
    /// the clock went back, when expired values can be young again.
    func testAClockBehindTheValuesNeitherHidesThemNorFoolsWhatWasRemembered() {
        var lastValues = cache(maxAge: 1_000)
        lastValues.store(message("s.1.3", "old"), nowMilliseconds: 1_000)
        lastValues.store(message("s.1.9", "new"), nowMilliseconds: 3_000)
        lastValues.store(message("s.0.1", "other"), nowMilliseconds: 3_000)
        let odd = Array("s.1.".utf8)
        XCTAssertEqual(
            lastValues.newest(under: odd, nowMilliseconds: 2_500, updatesFirst: 0)?.frames[1], Array("new".utf8))
        // Both expired at 5,000: nothing under s.1., remembered.
        XCTAssertNil(lastValues.newest(under: odd, nowMilliseconds: 5_000, updatesFirst: 0))
        // The clock steps back to 3,500: s.1.9 is half a second old again.
        XCTAssertEqual(
            lastValues.newest(under: odd, nowMilliseconds: 3_500, updatesFirst: 0)?.frames[1], Array("new".utf8))
        lastValues.expire(nowMilliseconds: 3_500)
        XCTAssertEqual(lastValues.count, 2, "s.1.3 expired; s.1.9 and s.0.1 are young")
    }

    func testExpiresByAge() {
        var lastValues = cache(maxAge: 1_000)
        lastValues.store(message("s.old", "x"), nowMilliseconds: 1_000)
        lastValues.store(message("s.new", "y"), nowMilliseconds: 2_500)
        XCTAssertNil(lastValues.entry(for: Array("s.old".utf8), nowMilliseconds: 2_600))
        XCTAssertNotNil(lastValues.entry(for: Array("s.new".utf8), nowMilliseconds: 2_600))
        // A new subscriber gets no expired value, whichever way the newest is found.
        for updatesFirst in [0, 32] {
            let newest = { lastValues.newest(under: Array("s.".utf8), nowMilliseconds: $0, updatesFirst: updatesFirst) }
            XCTAssertEqual(newest(2_600)?.frames, message("s.new", "y"))
            XCTAssertNil(newest(3_600))
        }
        lastValues.expire(nowMilliseconds: 2_600)
        XCTAssertEqual(lastValues.count, 1)
    }
}

final class SnapshotProtocolTests: XCTestCase {
    func testBase64RoundTrips() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            XCTAssertEqual(Base64.decode(Base64.encode(bytes)), bytes)
        }
        XCTAssertEqual(Base64.encode(Array("hello".utf8)), "aGVsbG8=")
        XCTAssertNil(Base64.decode("a*b="))
        // Every byte value round-trips, so every character of the alphabet decodes to its value.
        let everyByte = (0...255).map { UInt8($0) }
        XCTAssertEqual(Base64.decode(Base64.encode(everyByte)), everyByte)
        // Every character outside the alphabet is refused wherever it stands.
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".utf8)
        for byte in everyByte where !alphabet.contains(byte) {
            XCTAssertNil(Base64.decode(String(decoding: [65, 65, byte, 65], as: UTF8.self)), "byte \(byte)")
        }
    }

    func testSnapshotRequestNeedsAToken() throws {
        let request = try ControlRequest.parse(Array("SNAPSHOT abc-1 state. x".utf8), maxSize: 100).get()
        XCTAssertEqual(request.snapshotArguments?.token, "abc-1")
        XCTAssertEqual(request.snapshotArguments?.prefix, Array("state. x".utf8))
        XCTAssertEqual(
            try ControlRequest.parse(Array("SNAPSHOT t".utf8), maxSize: 100).get().snapshotArguments?.prefix, [])
        for bad in ["SNAPSHOT", "SNAPSHOT bad/token x", "SNAPSHOT " + String(repeating: "a", count: 65)] {
            guard case .failure(let error) = ControlRequest.parse(Array(bad.utf8), maxSize: 200) else {
                return XCTFail(bad)
            }
            XCTAssertEqual(error.code, .badArgument, bad)
        }
    }

    func testSnapshotEntriesCarryBinaryFramesExactly() {
        let frames: [[UInt8]] = [[0xFF, 0x00], [0, 1, 2], []]
        let entry = MessageJSON(
            LastValueCache.Entry(frames: frames, bytes: 5, sequence: 1, storedMilliseconds: 2))
        XCTAssertEqual(entry.topicBase64, "/wA=")
        XCTAssertEqual(entry.encoding, .base64)
        XCTAssertEqual(entry.messageFrames, frames)
    }

    func testConfigurationReadsLastValueAndUpstreamKeys() throws {
        let configuration = try ConfigurationFile.parse(
            """
            [endpoints]
            upstream = ["tcp://10.0.0.1:5556"]
            [last_value]
            prefixes = ["state.", "prices."]
            max_entries = 5
            max_bytes = 1000
            max_age_s = 60
            """
        ).get()
        XCTAssertEqual(configuration.upstreamEndpoints, ["tcp://10.0.0.1:5556"])
        XCTAssertEqual(configuration.lastValuePrefixes, ["state.", "prices."])
        XCTAssertEqual(configuration.lastValueMaxEntries, 5)
        XCTAssertEqual(configuration.lastValueMaxBytes, 1000)
        XCTAssertEqual(configuration.lastValueMaxAgeSeconds, 60)
        guard case .failure(let failure) = ConfigurationFile.parse("[endpoints]\nupstream = [\"tcp://*:1\"]\n") else {
            return XCTFail("a wildcard upstream must be refused")
        }
        XCTAssertEqual(failure.problems.first?.line, 2)
    }
}
