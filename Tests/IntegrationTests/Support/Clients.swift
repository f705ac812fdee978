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

/// Frames from strings, for readable test data.
func frames(_ parts: String...) -> [[UInt8]] { parts.map { Array($0.utf8) } }
