import Foundation
import ZeroMQ

/// What one measurement phase saw.
struct PhaseResult: Sendable {
    var sent = 0
    var received = 0
    /// Messages that should have arrived: every message sent, at every subscriber.
    var expected = 0
    /// First to last message received, across all subscribers.
    var elapsedNanoseconds: UInt64 = 0
    /// The forwarder's CPU time during the phase (all its threads), when measured.
    var brokerCPUNanoseconds: UInt64?
    /// Backlog phase only: the part of `brokerCPUNanoseconds` spent while the forwarder was held
    /// (its I/O thread taking the backlog in).
    var intakeCPUNanoseconds: UInt64?
    /// Backlog phase only: the forwarder's threads' sleeps (voluntary context switches) after it
    /// was let go.
    var drainSleeps: UInt64?
    /// Sorted one-way latencies in nanoseconds (latency phase only).
    var latencies: [UInt64] = []

    var lost: Int { max(0, expected - received) }
}

/// The producer and subscriber sockets of one run, connected to a forwarder (or to each other
/// for the direct baseline), and the two measurements made with them.
final class ClientSession {
    private let context: Context
    private let producer: Socket
    private let receivers: [Socket]
    private let workload: Workload
    private let topics: [[UInt8]]
    /// Per-peer queue on every client socket, as large as zpubd's default, so that the clients
    /// never drop earlier than the forwarder does.
    static let highWaterMark: Int32 = 10_000
    /// Subscribers subscribe to this prefix, which every topic starts with.
    static let prefix: [UInt8] = Array("t".utf8)

    /// Connects to `endpoints`, or, when nil, links producer and receivers directly.
    /// `highWaterMark` is every client socket's queue (0: unlimited, for a backlog).
    init(
        workload: Workload, topicCount: Int, endpoints: Endpoints?, highWaterMark: Int32 = ClientSession.highWaterMark
    ) throws {
        self.workload = workload
        topics = (0..<topicCount).map { Array("t\(String(format: "%05d", $0))".utf8) }
        context = try Context()
        let producerType: SocketType = workload.ingest == .push ? .push : .pub
        producer = try Socket(context, type: producerType)
        try producer.setOption(.linger, 0)
        try producer.setOption(.sendHighWaterMark, highWaterMark)
        // A PUSH whose broker stalls blocks; this bounds the wait (send then reports failure).
        try producer.setOption(.sendTimeout, 2_000)

        let receiverType: SocketType = workload.ingest == .push && endpoints == nil ? .pull : .sub
        var receivers: [Socket] = []
        for _ in 0..<workload.subscribers {
            let socket = try Socket(context, type: receiverType)
            try socket.setOption(.linger, 0)
            try socket.setOption(.receiveHighWaterMark, highWaterMark)
            if receiverType == .sub { try socket.setOption(.subscribe, bytes: Self.prefix) }
            receivers.append(socket)
        }
        self.receivers = receivers

        if let endpoints {
            try producer.connect(endpoints.ingest)
            for socket in receivers { try socket.connect(endpoints.xpub) }
        } else if receiverType == .pull {
            try receivers[0].bind("tcp://127.0.0.1:*")
            try producer.connect(receivers[0].lastEndpoint)
        } else {
            try producer.bind("tcp://127.0.0.1:*")
            for socket in receivers { try socket.connect(producer.lastEndpoint) }
        }
    }

    deinit {
        producer.close()
        for socket in receivers { socket.close() }
        context.terminate()
    }

    /// Sends `count` messages as fast as the producer socket takes them. `brokerCPU` reads the
    /// forwarder's CPU time: the phase reports what it used from the first message sent to the
    /// last end marker received (the warm-up, and subscribing, are left out).
    func throughput(count: Int, brokerCPU: (() -> UInt64?)? = nil) throws -> PhaseResult {
        try phase(count: count, intervalNanoseconds: 0, recordLatency: false, brokerCPU: brokerCPU)
    }

    /// Sends `count` messages at `rate` per second and records each one's latency.
    func latency(count: Int, rate: Int) throws -> PhaseResult {
        try phase(count: count, intervalNanoseconds: 1_000_000_000 / UInt64(rate), recordLatency: true)
    }

    private func phase(
        count: Int, intervalNanoseconds: UInt64, recordLatency: Bool, brokerCPU: (() -> UInt64?)? = nil
    ) throws -> PhaseResult {
        let signals = PhaseSignals(token: Time.now())
        let expected = count * receivers.count
        // Bounded in time whatever happens: 30 s covers the slowest scenario many times over.
        let receiver = Receiver(
            sockets: receivers, signals: signals, expected: expected, recordLatency: recordLatency,
            deadline: Time.now() + 30_000_000_000)
        receiver.start()
        // Whatever ends this phase (a failed warm-up, a send error), the receiver stops polling
        // before the sockets can be closed under it.
        defer {
            signals.abandoned.store(true, ordering: .releasing)
            receiver.join()
        }

        let topic = Message()
        let payload = Message()
        var bytes = [UInt8](repeating: 0x61, count: workload.size)
        try warmUp(signals: signals, topic: topic, payload: payload, bytes: &bytes)

        var sent = 0
        let cpuBefore = brokerCPU?()
        let start = Time.now()
        let sendDeadline = start + 20_000_000_000
        for index in 0..<count {
            if intervalNanoseconds > 0 {
                let due = start + UInt64(index) * intervalNanoseconds
                let now = Time.now()
                if due > now { Time.sleep(nanoseconds: due - now) }
            }
            topic.replace(with: topics[index % topics.count])
            let stamp = Time.now()
            if stamp > sendDeadline { break }
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: stamp, as: UInt64.self) }
            payload.replace(with: bytes)
            guard try producer.send(topic, more: true), try producer.send(payload) else { break }
            sent += 1
        }
        try sendEndMarkers(signals: signals, topic: topic, payload: payload, until: start + 30_000_000_000)
        receiver.join()
        let cpuAfter = brokerCPU?()

        var result = PhaseResult(sent: sent, received: receiver.received, expected: sent * receivers.count)
        if let cpuBefore, let cpuAfter, cpuAfter >= cpuBefore { result.brokerCPUNanoseconds = cpuAfter - cpuBefore }
        result.elapsedNanoseconds = receiver.lastNanoseconds &- receiver.firstNanoseconds
        result.latencies = receiver.latencies.sorted()
        return result
    }

    /// Queues `count` messages in front of a held forwarder, lets it go and measures it working
    /// through them (`zpub-bench saturated`): every poll finds a full queue, so the forwarder,
    /// not the clients' pace, decides what a delivery costs. The CPU counted starts before the
    /// first message is sent (the forwarder's I/O thread takes the backlog in while it is held)
    /// and ends with the last end marker received. Needs unlimited queues on both sides: a run
    /// that loses anything, or whose end markers do not all arrive, is refused, not averaged.
    func backlog(count: Int, hold: ForwarderHold, brokerStatistics: () -> SchedulerStatistics?) throws
        -> PhaseResult
    {
        let signals = PhaseSignals(token: Time.now())
        // Past every step's own bound (warm-up 10 s, intake 60 s, draining 100 s): the phase's
        // steps give up first, with their reason; this only guarantees the thread ends.
        let receiver = Receiver(
            sockets: receivers, signals: signals, expected: count * receivers.count, recordLatency: false,
            deadline: Time.now() + 200_000_000_000)
        receiver.start()
        defer {
            signals.abandoned.store(true, ordering: .releasing)
            receiver.join()
        }
        let topic = Message()
        let payload = Message()
        var bytes = [UInt8](repeating: 0x61, count: workload.size)
        try warmUp(signals: signals, topic: topic, payload: payload, bytes: &bytes)

        try hold.hold()
        let before = try Self.statistics(brokerStatistics)
        for index in 0..<count {
            topic.replace(with: topics[index % topics.count])
            let stamp = Time.now()
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: stamp, as: UInt64.self) }
            payload.replace(with: bytes)
            guard try producer.send(topic, more: true), try producer.send(payload) else {
                throw BenchError(
                    "the producer could not queue message \(index + 1) of \(count) (its queue is unlimited, so the forwarder stopped taking messages in: see its log)"
                )
            }
        }
        let held = try Self.waitUntilTakenIn(brokerStatistics)
        // Nothing queued may arrive before this: checked below, so that a hold that does not
        // hold fails the run instead of measuring a live one.
        let releasing = Time.now()
        try hold.release()

        try sendEndMarkers(signals: signals, topic: topic, payload: payload, until: Time.now() + 100_000_000_000)
        let ended = signals.ended.load(ordering: .acquiring)
        receiver.join()
        guard ended == receivers.count else {
            throw BenchError(
                "only \(ended) of \(receivers.count) subscribers saw the end marker within 100 s of letting the forwarder go (\(receiver.received) of \(count * receivers.count) deliveries): lower --deliveries, or see the forwarder's log"
            )
        }
        guard receiver.firstNanoseconds >= releasing else {
            throw BenchError(
                "a queued message arrived while the forwarder was held: holding it did not stop it forwarding"
            )
        }
        let after = try Self.statistics(brokerStatistics)
        var result = PhaseResult(sent: count, received: receiver.received, expected: count * receivers.count)
        guard result.lost == 0 else {
            throw BenchError(
                "\(result.lost) of \(result.expected) deliveries lost although every queue is unlimited: a forwarder or client dropped messages; see the forwarder's log"
            )
        }
        result.brokerCPUNanoseconds = after.runNanoseconds &- before.runNanoseconds
        result.intakeCPUNanoseconds = held.runNanoseconds &- before.runNanoseconds
        result.drainSleeps = after.sleeps &- held.sleeps
        result.elapsedNanoseconds = receiver.lastNanoseconds &- receiver.firstNanoseconds
        return result
    }

    private static func statistics(_ read: () -> SchedulerStatistics?) throws -> SchedulerStatistics {
        guard let statistics = read() else {
            throw BenchError(
                "cannot read the forwarder's CPU time from /proc/PID/task/*/schedstat: it has exited (see its log), or this is not Linux"
            )
        }
        return statistics
    }

    /// Waits until a held forwarder has taken the backlog in: its CPU time, and this process's
    /// (whose I/O thread sends the backlog), each grew by less than 1 ms (2% of a CPU) in two
    /// 50 ms windows in a row. Returns the forwarder's statistics then. The calling thread is
    /// left out of this process's: reading /proc takes it 1-2 ms per window.
    private static func waitUntilTakenIn(_ brokerStatistics: () -> SchedulerStatistics?) throws
        -> SchedulerStatistics
    {
        let deadline = Time.now() + 60_000_000_000
        // "PID/task/TID": Glibc's gettid is not visible from Swift here.
        let thisThread = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))
            .flatMap { $0.split(separator: "/").last.flatMap { Int32($0) } }
        let ownCPU = {
            SchedulerStatistics(processIdentifier: getpid(), excludedThread: thisThread)?.runNanoseconds ?? 0
        }
        var previous = try statistics(brokerStatistics)
        var previousOwn = ownCPU()
        var quietWindows = 0
        while quietWindows < 2 {
            guard Time.now() < deadline else {
                throw BenchError(
                    "the held forwarder was still taking messages in after 60 s: lower --deliveries, or run on a quieter machine"
                )
            }
            Time.sleep(milliseconds: 50)
            let now = try statistics(brokerStatistics)
            let own = ownCPU()
            let quiet = now.runNanoseconds &- previous.runNanoseconds < 1_000_000 && own &- previousOwn < 1_000_000
            quietWindows = quiet ? quietWindows + 1 : 0
            (previous, previousOwn) = (now, own)
        }
        return previous
    }

    /// End markers until every receiver has one, or `deadline`: each path is FIFO, so by then
    /// every message sent before it has arrived or was dropped. No idle-time guess, nothing
    /// left over. 16 bytes: a marker proves the path, it need not be as large as the measured
    /// messages.
    private func sendEndMarkers(signals: PhaseSignals, topic: Message, payload: Message, until deadline: UInt64)
        throws
    {
        var marker = [UInt8](repeating: 0, count: 16)
        marker.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt64.max, as: UInt64.self)
            $0.storeBytes(of: signals.token, toByteOffset: 8, as: UInt64.self)
        }
        while signals.ended.load(ordering: .acquiring) < receivers.count && Time.now() < deadline {
            topic.replace(with: topics[0])
            payload.replace(with: marker)
            _ = try producer.send(topic, more: true, dontWait: true) && producer.send(payload)
            Time.sleep(milliseconds: 10)
        }
    }

    /// Sends warm-up messages until every receiver has one: connections are up, subscriptions
    /// have reached the forwarder (and, for PUB ingest, the publisher). Gives up after 10 s.
    private func warmUp(signals: PhaseSignals, topic: Message, payload: Message, bytes: inout [UInt8]) throws {
        bytes.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt64(0), as: UInt64.self)
            if $0.count >= 16 { $0.storeBytes(of: signals.token, toByteOffset: 8, as: UInt64.self) }
        }
        let deadline = Time.now() + 10_000_000_000
        while signals.warmed.load(ordering: .acquiring) < receivers.count {
            guard Time.now() < deadline else {
                throw BenchError(
                    "warm-up: only \(signals.warmed.load(ordering: .relaxed)) of \(receivers.count) subscribers reachable after 10 s"
                )
            }
            topic.replace(with: topics[0])
            payload.replace(with: bytes)
            _ = try producer.send(topic, more: true, dontWait: true) && producer.send(payload)
            Time.sleep(milliseconds: 2)
        }
    }
}
