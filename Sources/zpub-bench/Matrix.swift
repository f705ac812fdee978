/// What the benchmark measures: workloads (message size, subscribers, ingest socket) crossed
/// with the things that forward them (zpubd in its variants and the baselines).

/// How producers hand messages to the broker.
enum Ingest: String, CaseIterable, Sendable {
    /// PUSH into the broker's PULL: back-pressure, nothing is lost on the way in.
    case push
    /// PUB into the broker's XSUB: the publisher drops when its queue is full.
    case pub
}

/// What sits between the producer and the subscribers.
enum Forwarder: Hashable, Sendable, CustomStringConvertible {
    /// No broker: PUSH->PULL or PUB->SUB straight from the producer.
    case direct
    /// libzmq's `zmq_proxy` in its own process: XSUB -> XPUB, or PULL -> PUB for PUSH ingest.
    case proxy
    /// A plain zmq_poll loop PULL+XSUB -> XPUB in its own process, as a C programmer writes it.
    case loop
    /// The release build of zpubd.
    case zpubd(accounting: Bool)
    /// zpubd with topic accounting and history on for all traffic, kept on disk
    /// (docs/history.md): what keeping every message costs the forwarding.
    case zpubdHistory

    var description: String {
        switch self {
        case .direct: "direct"
        case .proxy: "zmq_proxy"
        case .loop: "poll loop"
        case .zpubd(let accounting): accounting ? "zpubd acct on" : "zpubd acct off"
        case .zpubdHistory: "zpubd history"
        }
    }
}

/// One workload: the same clients and counts for every forwarder.
struct Workload: Hashable, Sendable, CustomStringConvertible {
    var size: Int
    var subscribers: Int
    var ingest: Ingest

    var description: String { "\(Workload.sizeName(size)) x\(subscribers) \(ingest.rawValue)" }

    static func sizeName(_ size: Int) -> String {
        size >= 1024 ? "\(size / 1024) KiB" : "\(size) B"
    }
}

/// One forwarder fed with one number of distinct topics.
struct Variant: Hashable, Sendable {
    var forwarder: Forwarder
    var topics: Int
}

/// The scenarios and the counts and rates of one benchmark run.
struct Matrix: Sendable {
    var sizes: [Int]
    var subscriberCounts: [Int]
    var ingests: [Ingest]
    var topicCounts: [Int]
    var repetitions: Int
    /// Seconds of sending at a fixed rate for the latency measurement.
    var latencySeconds: Double
    /// Deliveries (messages x subscribers) per throughput measurement, for each size.
    var deliveryBudget: [Int: Int]
    var withLoop: Bool
    /// Table sizes for the subscription scaling measurement.
    var subscriptionTableSizes: [Int]
    var subscriptionBatch: Int

    static let full = Matrix(
        sizes: [32, 1024, 65536], subscriberCounts: [1, 8, 64], ingests: [.push, .pub], topicCounts: [1, 10_000],
        repetitions: 3, latencySeconds: 0.4, deliveryBudget: [32: 400_000, 1024: 300_000, 65536: 24_000],
        withLoop: true, subscriptionTableSizes: [1, 1_000, 100_000], subscriptionBatch: 5_000)

    static let quick = Matrix(
        sizes: [32, 1024, 65536], subscriberCounts: [1, 8], ingests: [.push, .pub], topicCounts: [1, 10_000],
        repetitions: 2, latencySeconds: 0.2, deliveryBudget: [32: 60_000, 1024: 50_000, 65536: 4_000],
        withLoop: false, subscriptionTableSizes: [1, 1_000, 100_000], subscriptionBatch: 1_000)

    var workloads: [Workload] {
        var result: [Workload] = []
        for ingest in ingests {
            for size in sizes {
                for subscribers in subscriberCounts {
                    result.append(Workload(size: size, subscribers: subscribers, ingest: ingest))
                }
            }
        }
        return result
    }

    /// The forwarders run for a workload. The baselines do the same work whatever the number of
    /// topics (they do not look at topics beyond libzmq's prefix match), so they run with one
    /// topic only; zpubd runs with each topic count because its accounting depends on it.
    func variants(for workload: Workload) -> [Variant] {
        var result: [Variant] = []
        // PUSH->PULL has exactly one receiver, so "direct" exists only for one subscriber.
        if workload.ingest == .pub || workload.subscribers == 1 {
            result.append(Variant(forwarder: .direct, topics: topicCounts[0]))
        }
        result.append(Variant(forwarder: .proxy, topics: topicCounts[0]))
        if withLoop { result.append(Variant(forwarder: .loop, topics: topicCounts[0])) }
        for topics in topicCounts {
            result.append(Variant(forwarder: .zpubd(accounting: false), topics: topics))
            result.append(Variant(forwarder: .zpubd(accounting: true), topics: topics))
        }
        result.append(Variant(forwarder: .zpubdHistory, topics: topicCounts[0]))
        return result
    }

    /// Messages sent in a throughput measurement: the delivery budget shared by the
    /// subscribers, within bounds that keep each measurement between ~0.1 s and ~1 s.
    func throughputCount(_ workload: Workload) -> Int {
        let budget = deliveryBudget[workload.size] ?? 100_000
        let ceiling = workload.size >= 65536 ? 8_000 : 200_000
        return min(ceiling, max(500, budget / workload.subscribers))
    }

    /// The fixed send rate of the latency measurement (messages per second): the same for every
    /// forwarder, and low enough that no forwarder is saturated (deliveries stay well within
    /// what two cores move), so that the percentiles show forwarding delay, not queueing.
    func latencyRate(_ workload: Workload) -> Int {
        let (base, deliveriesPerSecond) =
            switch workload.size {
            case ..<1024: (10_000, 320_000)
            case ..<65536: (5_000, 160_000)
            default: (1_000, 8_000)
            }
        return max(50, min(base, deliveriesPerSecond / workload.subscribers))
    }
}
