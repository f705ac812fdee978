import Foundation
import XCTest
import ZeroMQ

/// Test clients: real ZeroMQ sockets connected to a daemon, each owned by the test's thread.
final class Clients {
    let context: Context
    private var sockets: [Socket] = []

    init() throws { context = try Context() }

    deinit {
        for socket in sockets { socket.close() }
        context.terminate()
    }

    func socket(_ type: SocketType, connect endpoint: String, options: (Socket) throws -> Void = { _ in }) throws
        -> Socket
    {
        let socket = try Socket(context, type: type)
        try socket.setOption(.linger, 0)
        // A send that cannot proceed (the daemon died, say) fails after 10 s instead of hanging
        // the whole test run; `options` may change it.
        try socket.setOption(.sendTimeout, 10_000)
        try options(socket)
        try socket.connect(endpoint)
        sockets.append(socket)
        return socket
    }

    /// A socket bound to `endpoint` (another broker's XPUB, a port held from zpubd), closed with
    /// the others.
    func socket(_ type: SocketType, bind endpoint: String) throws -> Socket {
        let socket = try Socket(context, type: type)
        try socket.setOption(.linger, 0)
        try socket.bind(endpoint)
        sockets.append(socket)
        return socket
    }

    func subscriber(_ endpoint: String, prefixes: [String], receiveHWM: Int32? = nil) throws -> Socket {
        try socket(.sub, connect: endpoint) { socket in
            if let receiveHWM { try socket.setOption(.receiveHighWaterMark, receiveHWM) }
            for prefix in prefixes { try socket.setOption(.subscribe, bytes: Array(prefix.utf8)) }
        }
    }

    func close(_ socket: Socket) {
        socket.close()
        sockets.removeAll { $0 === socket }
    }
}

extension Socket {
    /// Receives `count` messages, failing if any takes longer than `timeout` ms to arrive.
    func receive(_ count: Int, timeout: Int = 5_000, file: StaticString = #filePath, line: UInt = #line) throws
        -> [[[UInt8]]]
    {
        var messages: [[[UInt8]]] = []
        for index in 0..<count {
            guard let frames = try receiveFrames(timeoutMilliseconds: timeout) else {
                XCTFail("message \(index + 1) of \(count) did not arrive within \(timeout) ms", file: file, line: line)
                break
            }
            messages.append(frames)
        }
        return messages
    }

    /// Asserts that nothing arrives within `milliseconds`.
    func assertNothing(within milliseconds: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        if let frames = try receiveFrames(timeoutMilliseconds: milliseconds) {
            XCTFail("unexpected message \(frames.map { String(decoding: $0, as: UTF8.self) })", file: file, line: line)
        }
    }
}

extension Socket {
    /// Sends `message(0)`, `message(1)`, ... until a send gives up after the socket's send
    /// timeout: every queue towards a paused broker is full, and the broker's side of the
    /// connection has stopped reading. Returns how many went; nil, having failed the test, if
    /// `limit` went without that happening.
    func sendUntilHeldBack(
        limit: Int = 5_000_000, file: StaticString = #filePath, line: UInt = #line, _ message: (Int) -> [[UInt8]]
    ) throws -> Int? {
        var sent = 0
        while try send(frames: message(sent)) {
            sent += 1
            guard sent < limit else {
                XCTFail("\(limit) messages went to a paused broker", file: file, line: line)
                return nil
            }
        }
        return sent
    }
}

/// Frames from strings, for readable test data.
func frames(_ parts: String...) -> [[UInt8]] { parts.map { Array($0.utf8) } }

/// Publishes from a thread of its own, about 2,000 messages a second, until stopped: for tests
/// whose subscriber must join mid-stream however long that takes on a busy machine.
/// `messages(i)` gives what to send at step `i` (one or more messages).
final class BackgroundProducer {
    private let done = ConditionBox()
    private let stop = StopFlag()

    init(endpoint: String, messages: @escaping @Sendable (Int) -> [[[UInt8]]]) {
        let done = self.done
        let stop = self.stop
        Thread {
            defer { done.set() }
            guard let context = try? Context(), let push = try? Socket(context, type: .push) else { return }
            defer {
                push.close()
                context.terminate()
            }
            try? push.connect(endpoint)
            var i = 0
            while !stop.isSet {
                for message in messages(i) { _ = try? push.send(frames: message) }
                if i % 2 == 0 { usleep(1_000) }
                i += 1
            }
        }.start()
    }

    deinit { stop.set() }

    /// Stops it; true when it was still publishing until then and has now finished.
    func stopWhileRunning() -> Bool {
        let wasRunning = !done.wait(seconds: 0)
        stop.set()
        return wasRunning && done.wait(seconds: 30)
    }
}
