import Foundation
import ZeroMQ

/// What subscribing, unsubscribing and forwarding cost with a table of a given size.
struct ScalingResult: Sendable {
    var forwarder: Forwarder
    var tableSize: Int
    /// Building the table: seconds for `tableSize - 1` subscriptions from one subscriber.
    var fillSeconds: Double
    /// Microseconds per subscription / unsubscription, over a batch added on top of the table.
    var subscribeMicroseconds: Double
    var unsubscribeMicroseconds: Double
    /// Forwarding with the table in place: 32 B messages on 10,000 topics, one subscriber.
    var messagesPerSecond: Double
    var rssMiB: Double?
    /// The anonymous part of the RSS: what the forwarder allocated for its tables and queues.
    var anonymousRSSMiB: Double?
    var peakRSSMiB: Double?
}

/// Shows whether the cost of subscription changes and topic lookups depends on the number of
/// subscriptions. Timing is broker-agnostic: a subscriber subscribes a batch, then a marker
/// prefix; a PUB producer sends marker messages until one arrives. Subscriptions on one
/// connection are applied in order, and a PUB only sends what it has been asked for, so the
/// marker's arrival means the whole batch went through the forwarder and on to the publisher
/// (as it must, for a PUB producer: zpubd and zmq_proxy XSUB -> XPUB both forward them).
enum SubscriptionScaling {
    static func run(_ matrix: Matrix, programs: Programs) -> [ScalingResult] {
        var results: [ScalingResult] = []
        for tableSize in matrix.subscriptionTableSizes {
            for forwarder in [Forwarder.proxy, .zpubd(accounting: true)] {
                do {
                    let result = try measure(
                        forwarder, tableSize: tableSize, batch: matrix.subscriptionBatch, programs: programs)
                    results.append(result)
                    MatrixRunner.progress(
                        "subscriptions \(tableSize) \(forwarder): subscribe \(Report.number(result.subscribeMicroseconds)) µs, unsubscribe \(Report.number(result.unsubscribeMicroseconds)) µs, \(Report.number(result.messagesPerSecond)) msg/s"
                    )
                } catch {
                    MatrixRunner.progress("subscriptions \(tableSize) \(forwarder) FAILED: \(error)")
                }
            }
        }
        return results
    }

    static func measure(_ forwarder: Forwarder, tableSize: Int, batch: Int, programs: Programs) throws
        -> ScalingResult
    {
        let broker = try BrokerProcess(forwarder, ingest: .pub, programs: programs)
        defer { broker.stop() }
        let context = try Context()
        defer { context.terminate() }
        let producer = try Socket(context, type: .pub)
        let subscriber = try Socket(context, type: .sub)
        defer {
            producer.close()
            subscriber.close()
        }
        for socket in [producer, subscriber] { try socket.setOption(.linger, 0) }
        // Unlimited: a SUB's send HWM otherwise caps a burst of subscriptions (../shared/NOTES.md),
        // and so would the publisher's receive HWM when they are forwarded on to it.
        try subscriber.setOption(.sendHighWaterMark, 0)
        try producer.setOption(.receiveHighWaterMark, 0)
        try producer.connect(broker.endpoints.ingest)
        try subscriber.connect(broker.endpoints.xpub)

        // The table: tableSize - 1 prefixes here, plus the measuring subscriber's "t" below.
        var start = Time.now()
        for index in 0..<max(0, tableSize - 1) { try subscriber.setOption(.subscribe, string: "z\(pad(index))") }
        try waitForMarker("m0", subscriber: subscriber, producer: producer)
        let fillSeconds = Time.seconds(Time.now() - start)

        start = Time.now()
        for index in 0..<batch { try subscriber.setOption(.subscribe, string: "y\(pad(index))") }
        try waitForMarker("m1", subscriber: subscriber, producer: producer)
        let subscribeNanoseconds = Time.now() - start

        start = Time.now()
        for index in 0..<batch { try subscriber.setOption(.unsubscribe, string: "y\(pad(index))") }
        try waitForMarker("m2", subscriber: subscriber, producer: producer)
        let unsubscribeNanoseconds = Time.now() - start

        let workload = Workload(size: 32, subscribers: 1, ingest: .pub)
        let session = try ClientSession(workload: workload, topicCount: 10_000, endpoints: broker.endpoints)
        let throughput = try session.throughput(count: 100_000)
        let rate = Double(throughput.received) / max(1e-9, Time.seconds(throughput.elapsedNanoseconds))
        return ScalingResult(
            forwarder: forwarder, tableSize: tableSize, fillSeconds: fillSeconds,
            subscribeMicroseconds: Double(subscribeNanoseconds) / 1_000 / Double(batch),
            unsubscribeMicroseconds: Double(unsubscribeNanoseconds) / 1_000 / Double(batch),
            messagesPerSecond: rate, rssMiB: broker.currentRSSKiB.map { Double($0) / 1024 },
            anonymousRSSMiB: broker.anonymousRSSKiB.map { Double($0) / 1024 },
            peakRSSMiB: broker.peakRSSKiB.map { Double($0) / 1024 })
    }

    /// Subscribes `marker` and sends marker messages until one arrives (at most 60 s).
    private static func waitForMarker(_ marker: String, subscriber: Socket, producer: Socket) throws {
        try subscriber.setOption(.subscribe, string: marker)
        let deadline = Time.now() + 60_000_000_000
        while Time.now() < deadline {
            try producer.send(frames: [Array(marker.utf8)], dontWait: true)
            if let frames = try subscriber.receiveFrames(timeoutMilliseconds: 1), frames.first == Array(marker.utf8) {
                // Marker messages still on their way would disturb the next step's timing.
                while try subscriber.receiveFrames(timeoutMilliseconds: 5) != nil {}
                return
            }
        }
        throw BenchError("marker \(marker) never arrived: the forwarder did not apply the subscriptions in 60 s")
    }

    private static func pad(_ index: Int) -> String { String(format: "%06d", index) }

    static func table(_ results: [ScalingResult]) -> String {
        var lines = [
            "| subscriptions | forwarder | fill s | subscribe µs | unsubscribe µs | msg/s (32 B, 10k topics) | RSS MiB | of which anon | peak RSS MiB |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for result in results {
            lines.append(
                "| \(result.tableSize) | \(result.forwarder) | \(Report.number(result.fillSeconds)) | \(Report.number(result.subscribeMicroseconds)) | \(Report.number(result.unsubscribeMicroseconds)) | \(Report.number(result.messagesPerSecond)) | \(result.rssMiB.map { Report.number($0) } ?? "-") | \(result.anonymousRSSMiB.map { Report.number($0) } ?? "-") | \(result.peakRSSMiB.map { Report.number($0) } ?? "-") |"
            )
        }
        return lines.joined(separator: "\n")
    }
}
