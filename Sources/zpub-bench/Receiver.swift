import Foundation
import Synchronization
import ZeroMQ

/// What the publisher and the receiver thread tell each other during one measurement.
final class PhaseSignals: Sendable {
    /// Receiving sockets that have seen a warm-up message (so their path is complete).
    let warmed = Atomic<Int>(0)
    /// Set once the publisher has sent its last message.
    let publisherDone = Atomic<Bool>(false)
}

/// Receives on every subscriber socket from one thread and counts what arrives.
///
/// Each message is two frames: a topic and a payload whose first 8 bytes are the monotonic time
/// it was sent (0 marks a warm-up message, which only proves the path works). One thread polls
/// all sockets, so 64 subscribers cost the machine one thread, as they would cost a C client.
final class Receiver: @unchecked Sendable {
    private let sockets: [Socket]
    private let signals: PhaseSignals
    private let expected: Int
    private let recordLatency: Bool
    private let deadline: UInt64
    /// Once the publisher is done, give up after this long without a message (the rest is lost).
    private let idleNanoseconds: UInt64 = 300_000_000
    private let finished = DispatchSemaphore(value: 0)

    private(set) var received = 0
    private(set) var firstNanoseconds: UInt64 = 0
    private(set) var lastNanoseconds: UInt64 = 0
    private(set) var latencies: [UInt64] = []

    init(sockets: [Socket], signals: PhaseSignals, expected: Int, recordLatency: Bool, deadline: UInt64) {
        self.sockets = sockets
        self.signals = signals
        self.expected = expected
        self.recordLatency = recordLatency
        self.deadline = deadline
        if recordLatency { latencies.reserveCapacity(expected) }
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Waits for the receiving thread (which always ends by its own deadline).
    func join() { finished.wait() }

    private func run() {
        var poller = Poller()
        for socket in sockets { poller.add(socket) }
        var warmed = [Bool](repeating: false, count: sockets.count)
        let topic = Message()
        let payload = Message()
        var lastArrival = Time.now()
        while received < expected {
            let now = Time.now()
            if now > deadline { break }
            if signals.publisherDone.load(ordering: .acquiring) && now &- lastArrival > idleNanoseconds { break }
            guard let ready = try? poller.poll(timeoutMilliseconds: 20), ready > 0 else { continue }
            for index in sockets.indices where poller.isReadable(index) {
                let socket = sockets[index]
                // Bounded bursts, so that one busy socket does not starve the others.
                for _ in 0..<256 {
                    guard (try? socket.receive(into: topic, dontWait: true)) == true else { break }
                    guard topic.hasMore, (try? socket.receive(into: payload)) == true else { continue }
                    let stamp: UInt64 = payload.withUnsafeBytes {
                        $0.count >= 8 ? $0.loadUnaligned(as: UInt64.self) : 0
                    }
                    let arrival = Time.now()
                    lastArrival = arrival
                    if stamp == 0 {
                        if !warmed[index] {
                            warmed[index] = true
                            signals.warmed.add(1, ordering: .releasing)
                        }
                        continue
                    }
                    if firstNanoseconds == 0 { firstNanoseconds = arrival }
                    lastNanoseconds = arrival
                    received += 1
                    if recordLatency { latencies.append(arrival &- stamp) }
                }
            }
        }
    }
}
