/// What one run (one forwarder, one workload, one repetition) measured.
struct RunResult: Sendable {
    var messagesPerSecond: Double
    var megabytesPerSecond: Double
    /// Latency percentiles in microseconds: p50, p99, p99.9, max.
    var p50: Double
    var p99: Double
    var p999: Double
    var max: Double
    /// Both phases together.
    var sent: Int
    var received: Int
    var lost: Int
    /// Lost in the throughput phase alone: where the rates and the CPU per delivery come from.
    var throughputLost: Int
    /// Deliveries per second over all subscribers in the throughput phase.
    var deliveriesPerSecond: Double
    /// Peak RSS of the forwarder process in MiB; nil for the direct baseline.
    var peakRSSMiB: Double?
    /// The forwarder's CPU time (all its threads) per delivered message during the throughput
    /// phase, in ns; nil for the direct baseline.
    var brokerNanosecondsPerDelivery: Double?

    init(workload: Workload, throughput: PhaseResult, latency: PhaseResult, peakRSSKiB: Int?) {
        let seconds = Time.seconds(throughput.elapsedNanoseconds)
        // Messages per second per subscriber: the rate at which distinct messages get through.
        let perSubscriber = Double(throughput.received) / Double(workload.subscribers)
        messagesPerSecond = seconds > 0 ? perSubscriber / seconds : 0
        deliveriesPerSecond = seconds > 0 ? Double(throughput.received) / seconds : 0
        throughputLost = throughput.lost
        megabytesPerSecond = messagesPerSecond * Double(workload.size) / 1e6
        let micro = { (value: UInt64) in Double(value) / 1_000 }
        p50 = micro(Percentile.of(latency.latencies, 0.50))
        p99 = micro(Percentile.of(latency.latencies, 0.99))
        p999 = micro(Percentile.of(latency.latencies, 0.999))
        max = micro(latency.latencies.last ?? 0)
        sent = throughput.sent + latency.sent
        received = throughput.received + latency.received
        lost = throughput.lost + latency.lost
        peakRSSMiB = peakRSSKiB.map { Double($0) / 1024 }
    }
}

enum Percentile {
    /// The nearest-rank percentile of sorted values; 0 when there are none.
    static func of(_ sorted: [UInt64], _ fraction: Double) -> UInt64 {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank))]
    }
}

/// The median of repeated measurements and their spread.
struct Spread: Sendable {
    var median: Double
    var min: Double
    var max: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        median =
            sorted.isEmpty
            ? 0
            : sorted.count % 2 == 1
                ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        min = sorted.first ?? 0
        max = sorted.last ?? 0
    }
}

/// All repetitions of one forwarder on one workload.
struct Summary: Sendable {
    var runs: [RunResult] = []

    func spread(_ value: (RunResult) -> Double) -> Spread { Spread(runs.map(value)) }
    var throughput: Spread { spread(\.messagesPerSecond) }
    var megabytes: Spread { spread(\.megabytesPerSecond) }
    var p50: Spread { spread(\.p50) }
    var p99: Spread { spread(\.p99) }
    var p999: Spread { spread(\.p999) }
    var max: Spread { spread(\.max) }
    var sent: Int { runs.reduce(0) { $0 + $1.sent } }
    var received: Int { runs.reduce(0) { $0 + $1.received } }
    var lost: Int { runs.reduce(0) { $0 + $1.lost } }
    var throughputLost: Int { runs.reduce(0) { $0 + $1.throughputLost } }
    /// How much of one CPU the forwarder used while it delivered (its CPU per delivery times
    /// deliveries per second): near 1.0, the forwarder set the pace (its loop thread is one
    /// CPU's worth; libzmq's I/O thread runs beside it); well below, the clients did.
    var busyCPUs: Spread? {
        let values = runs.compactMap { run in
            run.brokerNanosecondsPerDelivery.map { $0 * run.deliveriesPerSecond / 1e9 }
        }
        return values.isEmpty ? nil : Spread(values)
    }
    var peakRSSMiB: Double? { runs.compactMap(\.peakRSSMiB).max() }
    /// Nil when no run measured it (the direct baseline has no forwarder).
    var cpu: Spread? {
        let values = runs.compactMap(\.brokerNanosecondsPerDelivery)
        return values.isEmpty ? nil : Spread(values)
    }
}
