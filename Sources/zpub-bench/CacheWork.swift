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
            "Microseconds per operation (median of \(repetitions)); topics updated in a random order. "
                + "The subscription is to a prefix holding half the values whose newest is not among the "
                + "newest updates (the case that scans); the page is a pair backup's request "
                + "(1,000 entries or 4 MiB).",
            "",
            "| values | update (ns) | subscribe, first (µs) | subscribe, again (µs) | expire, per second (µs) "
                + "| page, last 100 updates (µs) | page, from the start (µs) | SNAPSHOT copy on loop (µs) "
                + "| SNAPSHOT sort, control thread (µs) |",
            "|---|---|---|---|---|---|---|---|---|",
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

    struct Row {
        var size: Int
        var updateNanoseconds: Double
        var firstSubscribe, againSubscribe, expire, recentPage, firstPage, snapshotCopy, snapshotSort: Double

        var markdown: String {
            let cells = [firstSubscribe, againSubscribe, expire, recentPage, firstPage, snapshotCopy, snapshotSort]
            return "| \(size) | \(Report.number(updateNanoseconds)) | "
                + cells.map(Report.number).joined(separator: " | ") + " |"
        }
    }

    private static let now: UInt64 = 2_000

    private func topic(_ i: Int) -> [UInt8] { Array("s.\(i % 2).\(i)".utf8) }

    /// A full cache whose table order is not its order of updates, as after real traffic.
    private func filledCache() -> LastValueCache {
        var cache = LastValueCache(
            prefixes: [Array("s.".utf8)], maxEntries: size, maxBytes: 1 << 40, maxAgeMilliseconds: 3_600_000)
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
        let odd = Array("s.1.".utf8)
        let updates = 1_000_000
        let encoded = (0..<1_024).map { FrameCodec.encode([topic($0), Array(repeating: 7, count: 32)]) }
        let update =
            median {
                microseconds {
                    for i in 0..<updates {
                        encoded[i & 1_023].withUnsafeBytes {
                            cache.store(encoded: $0, frameCount: 2, nowMilliseconds: 1_000)
                        }
                    }
                }
            } * 1_000 / Double(updates)
        // The newest updates all under s.0., so that a subscription under s.1. scans.
        for i in 0..<64 { cache.store([topic(2 * i), [3]], nowMilliseconds: 1_000) }
        // Each repetition a new prefix, so that none is remembered; then the first one again,
        // after an update elsewhere. Even numbers: s.1.2 is no topic (odd ones are), but a
        // prefix of some (s.1.21).
        var round = 0
        let first = median {
            round += 1
            let prefix = odd + Array("\(2 * round)".utf8)
            return microseconds { _ = cache.newest(under: prefix, nowMilliseconds: Self.now) }
        }
        let again = median {
            cache.store([topic(0), [4]], nowMilliseconds: 1_000)
            return microseconds { _ = cache.newest(under: odd + Array("2".utf8), nowMilliseconds: Self.now) }
        }
        let expire = median { microseconds { cache.expire(nowMilliseconds: Self.now) } }
        let recentPage = median {
            microseconds {
                _ = cache.entries(
                    updatedAfter: cache.lastSequence - 100, limit: 1_000, maxBytes: 4 << 20,
                    nowMilliseconds: Self.now)
            }
        }
        let firstPage = median {
            microseconds {
                _ = cache.entries(updatedAfter: 0, limit: 1_000, maxBytes: 4 << 20, nowMilliseconds: Self.now)
            }
        }
        var captured: [LastValueCache.Entry] = []
        let copy = median {
            microseconds { captured = cache.unsortedEntries(under: [], nowMilliseconds: Self.now) }
        }
        let sort = median { microseconds { _ = captured.sorted { $0.sequence < $1.sequence } } }
        return Row(
            size: size, updateNanoseconds: update, firstSubscribe: first, againSubscribe: again, expire: expire,
            recentPage: recentPage, firstPage: firstPage, snapshotCopy: copy, snapshotSort: sort)
    }
}
