import Foundation
import Synchronization
import ZPubCore
import ZeroMQ

/// What the publisher and the receiver thread tell each other during one measurement.
final class PhaseSignals: Sendable {
    /// Receiving sockets that have seen a warm-up message (so their path is complete).
    let warmed = Atomic<Int>(0)
    /// Set when the phase ends early (or is over): the receiver stops at once.
    let abandoned = Atomic<Bool>(false)
    /// Identifies this phase's warm-up messages (payload bytes 8..<16), so that a warm-up
    /// message left over from an earlier phase cannot warm this one.
    let token: UInt64
    /// Receiving sockets that have seen this phase's end marker (stamp UInt64.max).
    let ended = Atomic<Int>(0)
    init(token: UInt64) { self.token = token }
}

/// Receives on every subscriber socket from one thread and counts what arrives.
///
/// Each message is two frames: a topic and a payload whose first 8 bytes are the monotonic time
/// it was sent. Two stamps are special, each followed by the phase's token in bytes 8..<16:
/// 0 marks a warm-up message (it only proves the path works), UInt64.max the end marker. A
/// socket's path is first-in first-out, so what arrives before this phase's warm-up was left
/// over from the phase before (late, not lost, and not this phase's), and once the end marker
/// has arrived everything sent before it has arrived or was dropped. One thread polls all
/// sockets, so 64 subscribers cost the machine one thread, as they would cost a C client.
// Unchecked: only the receiving thread writes the counters, and the publisher reads them after
// `join()`, whose pthread_join orders every write before the read.
final class Receiver: @unchecked Sendable {
    private let sockets: [Socket]
    private let signals: PhaseSignals
    private let expected: Int
    private let recordLatency: Bool
    private let deadline: UInt64
    private var thread: JoinableThread?

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
        thread = JoinableThread(name: "bench-receiver") { [self] in run() }
    }

    /// Waits for the receiving thread (which always ends by its own deadline).
    /// Called from the publisher's thread only; a second call returns at once.
    func join() {
        thread?.join()
        thread = nil
    }

    private func run() {
        var poller = Poller()
        for socket in sockets { poller.add(socket) }
        var warmed = [Bool](repeating: false, count: sockets.count)
        var ended = [Bool](repeating: false, count: sockets.count)
        var endedCount = 0
        let topic = Message()
        let payload = Message()
        // Ends when every socket has seen this phase's end marker, not on a guess about idleness:
        // a forwarder that pauses for a moment (a busy shared CPU) is slow, not finished.
        while endedCount < sockets.count {
            let now = Time.now()
            if now > deadline || signals.abandoned.load(ordering: .acquiring) { break }
            guard let ready = try? poller.poll(timeoutMilliseconds: 20), ready > 0 else { continue }
            for index in sockets.indices where poller.isReadable(index) {
                let socket = sockets[index]
                // Bounded bursts, so that one busy socket does not starve the others.
                for _ in 0..<256 {
                    guard (try? socket.receive(into: topic, dontWait: true)) == true else { break }
                    guard topic.hasMore, (try? socket.receive(into: payload)) == true else { continue }
                    let (stamp, tag): (UInt64, UInt64) = payload.withUnsafeBytes {
                        (
                            $0.count >= 8 ? $0.loadUnaligned(as: UInt64.self) : 0,
                            $0.count >= 16 ? $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) : 0
                        )
                    }
                    let arrival = Time.now()
                    if stamp == 0 {
                        if tag == signals.token && !warmed[index] {
                            warmed[index] = true
                            signals.warmed.add(1, ordering: .releasing)
                        }
                        continue
                    }
                    // Each path is FIFO: anything before this phase's warm-up message on this
                    // socket was sent in an earlier phase (late, not lost). Not this phase's.
                    guard warmed[index] else { continue }
                    if stamp == .max {
                        if tag == signals.token && !ended[index] {
                            ended[index] = true
                            endedCount += 1
                            signals.ended.add(1, ordering: .releasing)
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
