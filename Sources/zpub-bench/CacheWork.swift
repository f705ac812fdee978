import ArgumentParser
import Foundation
import ZPubCore

/// What the last-value cache costs the forwarding loop outside the message path, by cache size:
/// the work that grows with the cache rather than with the traffic. Measured in this process
/// on zpubd's own `LastValueCache` (the loop's code, in the loop's build), so that sizes zpubd
/// allows (up to 10 million values) can be compared without filling a broker over sockets.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Measure the last-value cache's work on the forwarding loop at several cache sizes.")

    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp("Numbers of cached values to measure at.", valueName: "count"))
    var sizes: [Int] = [10_000, 100_000, 1_000_000]

    @Option(help: ArgumentHelp("Repetitions of each measurement; the median is shown.", valueName: "n"))
    var repetitions = 5

    @Option(help: ArgumentHelp("Write the Markdown report here as well as to stdout.", valueName: "file"))
    var output: String?

    func validate() throws {
        guard sizes.allSatisfy({ $0 >= 1_000 && $0 <= 10_000_000 }) else {
            throw ValidationError("--sizes must be 1000 to 10000000 (what [last_value] max_entries allows)")
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
    }

    func run() throws {
        var lines = [
            "## Last-value cache: work on the forwarding loop by cache size",
            "",
            "Microseconds per operation (median of \(repetitions)), after every topic was updated in a random "
                + "order. Update: nanoseconds per update of a cached topic. Subscribe: to a prefix (s.1.2, "
                + "s.1.4, ...: 5% of the values) whose newest value is not among the newest updates, the first "
                + "time (a scan), and again with one update since. Expire: a second's call with nothing "
                + "expired, and with everything expired (the call's bound of removals). Pages: a pair backup's "
                + "request (1,000 entries or 4 MiB): for the last 100 updates, from the start, and the one "
                + "after a page from the middle (a backup copying the cache). SNAPSHOT of everything: the "
                + "copy on the loop, the sort on the control thread.",
            "",
            "| values | update (ns) | subscribe, first | subscribe, again | expire, none | expire, all "
                + "| page, last 100 | page, first | page, next | SNAPSHOT copy (loop) | SNAPSHOT sort |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size in sizes {
            let row = CacheWork(size: size, repetitions: repetitions).measure()
            lines.append(row.markdown)
            FileHandle.standardError.write(Data("cache \(size): done\n".utf8))
        }
        let report = lines.joined(separator: "\n") + "\n"
        print(report, terminator: "")
        if let output { try report.write(toFile: output, atomically: true, encoding: .utf8) }
    }
}

/// One cache size's measurements.
struct CacheWork {
    let size: Int
    let repetitions: Int

    /// Microseconds, but for the update's nanoseconds.
    struct Row {
        var size: Int
        var update: Double
        var firstSubscribe = 0.0, againSubscribe = 0.0, expireNone = 0.0, expireAll = 0.0
        var recentPage = 0.0, firstPage = 0.0, nextPage = 0.0, snapshotCopy = 0.0, snapshotSort = 0.0

        var markdown: String {
            let cells = [
                update, firstSubscribe, againSubscribe, expireNone, expireAll, recentPage, firstPage, nextPage,
                snapshotCopy, snapshotSort,
            ]
            return "| \(size) | " + cells.map(Report.number).joined(separator: " | ") + " |"
        }
    }

    private static let now: UInt64 = 2_000
    private static let maxAge: UInt64 = 3_600_000

    private func topic(_ i: Int) -> [UInt8] { Array("s.\(i % 2).\(i)".utf8) }

    /// A full cache whose table order is not its order of updates, as after real traffic.
    private func filledCache() -> LastValueCache {
        var cache = LastValueCache(
            prefixes: [Array("s.".utf8)], maxEntries: size, maxBytes: 1 << 40, maxAgeMilliseconds: Self.maxAge)
        for i in 0..<size { cache.store([topic(i), [1]], nowMilliseconds: 1_000) }
        var generator = SystemRandomNumberGenerator()
        for i in (0..<size).shuffled(using: &generator) { cache.store([topic(i), [2]], nowMilliseconds: 1_000) }
        return cache
    }

    private func microseconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000
    }

    private func median(_ body: () -> Double) -> Double {
        let values = (0..<repetitions).map { _ in body() }.sorted()
        return values[values.count / 2]
    }

    func measure() -> Row {
        var cache = filledCache()
        // Updates of cached topics, from the message path's layout (half the cache at most, so
        // that none is a new topic evicting another).
        let updates = 1_000_000
        let encoded = (0..<min(1_024, size / 2)).map { FrameCodec.encode([topic($0), Array(repeating: 7, count: 32)]) }
        var row = Row(
            size: size,
            update: median {
                microseconds {
                    for i in 0..<updates {
                        encoded[i % encoded.count].withUnsafeBytes {
                            cache.store(encoded: $0, frameCount: 2, nowMilliseconds: 1_000)
                        }
                    }
                }
            } * 1_000 / Double(updates))
        // The newest updates all under s.0., so that a subscription under s.1. scans.
        for i in 0..<64 { cache.store([topic(2 * i), [3]], nowMilliseconds: 1_000) }
        measureSubscriptions(&cache, into: &row)
        row.expireNone = median { microseconds { cache.expire(nowMilliseconds: Self.now) } }
        measurePages(&cache, into: &row)
        var captured: [LastValueCache.Entry] = []
        row.snapshotCopy = median {
            microseconds { captured = cache.unsortedEntries(under: [], nowMilliseconds: Self.now) }
        }
        row.snapshotSort = median { microseconds { _ = captured.sorted { $0.sequence < $1.sequence } } }
        // Everything expired at once: one call removes its bound's worth (and sweeps), from a
        // full cache each time.
        row.expireAll = median {
            var expiring = filledCache()
            return microseconds { expiring.expire(nowMilliseconds: 1_000 + Self.maxAge + 1) }
        }
        return row
    }

    /// Each repetition a new prefix, so that none is remembered (even numbers: s.1.2 is no
    /// topic, odd ones are, but a prefix of some, s.1.21); then the first one again, after an
    /// update elsewhere.
    private func measureSubscriptions(_ cache: inout LastValueCache, into row: inout Row) {
        let odd = Array("s.1.".utf8)
        var round = 0
        row.firstSubscribe = median {
            round += 1
            let prefix = odd + Array("\(2 * round)".utf8)
            return microseconds { _ = cache.newest(under: prefix, nowMilliseconds: Self.now) }
        }
        row.againSubscribe = median {
            cache.store([topic(0), [4]], nowMilliseconds: 1_000)
            return microseconds { _ = cache.newest(under: odd + Array("2".utf8), nowMilliseconds: Self.now) }
        }
    }

    private func measurePages(_ cache: inout LastValueCache, into row: inout Row) {
        func page(after sequence: UInt64) -> (entries: [LastValueCache.Entry], more: Bool) {
            cache.entries(updatedAfter: sequence, limit: 1_000, maxBytes: 4 << 20, nowMilliseconds: Self.now)
        }
        row.recentPage = median { microseconds { _ = page(after: cache.lastSequence - 100) } }
        row.firstPage = median { microseconds { _ = page(after: 0) } }
        // Half way through a copy of the whole cache, page by page.
        var middle: UInt64 = 0
        for _ in 0..<max(1, size / 2_000) { middle = page(after: middle).entries.last?.sequence ?? middle }
        row.nextPage = median {
            let end = page(after: middle).entries.last?.sequence ?? middle
            return microseconds { _ = page(after: end) }
        }
    }
}
