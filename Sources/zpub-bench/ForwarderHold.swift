import Foundation
import ZeroMQ

/// Stops a forwarder reading its ingest socket and lets it go again, so that a backlog can be
/// queued in front of it (`zpub-bench saturated`): zpubd by PAUSE and RESUME on its control
/// socket, whose reply comes once its loop has acted on it; the baselines, started `holdable`,
/// by TERMINATE and RESUME on their `HoldControl` PAIR. Either way, held means nothing reads
/// the ingest socket and nothing polls it.
final class ForwarderHold {
    private let context: Context
    private let socket: Socket
    private let isZpubd: Bool

    init(_ broker: BrokerProcess) throws {
        switch broker.forwarder {
        case .zpubd, .zpubdHistory: isZpubd = true
        case .proxy, .loop: isZpubd = false
        case .direct: throw BenchError("a direct link has no forwarder to hold")
        }
        context = try Context()
        socket = try Socket(context, type: isZpubd ? .req : .pair)
        try socket.setOption(.linger, 0)
        try socket.connect(broker.controlEndpoint)
    }

    deinit {
        socket.close()
        context.terminate()
    }

    func hold() throws {
        try exchange(isZpubd ? "PAUSE" : HoldControl.hold, expecting: isZpubd ? "paused" : "HELD")
    }

    func release() throws {
        try exchange(isZpubd ? "RESUME" : HoldControl.resume, expecting: isZpubd ? "running" : "RUNNING")
    }

    private func exchange(_ request: String, expecting answer: String) throws {
        try socket.send(text: request)
        guard let frames = try socket.receiveFrames(timeoutMilliseconds: 10_000) else {
            throw BenchError("the forwarder did not answer \(request) within 10 s")
        }
        let text = String(decoding: frames.joined(), as: UTF8.self)
        guard text.contains(answer) else {
            throw BenchError("the forwarder answered \(request) with \"\(text)\", not \(answer)")
        }
    }
}
