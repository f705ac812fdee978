import XCTest

@testable import ZeroMQ

final class SocketTests: XCTestCase {
    private var context: Context!

    override func setUpWithError() throws {
        context = try Context()
    }

    override func tearDown() {
        context.terminate()
    }

    private func pair(_ name: String, _ a: SocketType, _ b: SocketType) throws -> (Socket, Socket) {
        let server = try Socket(context, type: a)
        try server.setOption(.linger, 0)
        try server.bind("inproc://\(name)")
        let client = try Socket(context, type: b)
        try client.setOption(.linger, 0)
        try client.connect("inproc://\(name)")
        return (server, client)
    }

    func testMultipartMessagesArriveWholeAndInOrder() throws {
        let (pull, push) = try pair("multipart", .pull, .push)
        defer { pull.close(); push.close() }
        let frames: [[UInt8]] = [Array("topic".utf8), [], [0, 1, 2, 255], Array(repeating: 7, count: 100_000)]
        XCTAssertTrue(try push.send(frames: frames))
        XCTAssertEqual(try pull.receiveFrames(timeoutMilliseconds: 2_000), frames)
    }

    func testOneMessageObjectCanBeReusedForReceiveAndSend() throws {
        let (pull, push) = try pair("reuse", .pull, .push)
        let (sink, relay) = try pair("reuse-out", .pull, .push)
        defer { [pull, push, sink, relay].forEach { $0.close() } }
        for i in 0..<50 {
            let big = Array(repeating: UInt8(i), count: i * 37)  // inline and reference-counted sizes
            try push.send(frames: [Array("t\(i)".utf8), big])
        }
        let message = Message()
        for _ in 0..<50 {
            XCTAssertTrue(try Poller.waitReadable(pull, timeoutMilliseconds: 2_000))
            XCTAssertTrue(try pull.receive(into: message))
            var more = message.hasMore
            try relay.send(message, more: more)
            XCTAssertEqual(message.count, 0, "a send leaves the message empty")
            while more {
                _ = try pull.receive(into: message)
                more = message.hasMore
                try relay.send(message, more: more)
            }
        }
        for i in 0..<50 {
            let frames = try sink.receiveFrames(timeoutMilliseconds: 2_000)
            XCTAssertEqual(frames, [Array("t\(i)".utf8), Array(repeating: UInt8(i), count: i * 37)])
        }
    }

    /// A frame over tcp carries its connection's metadata (its descriptor too); one over
    /// inproc none: how the broker tells the gateway's in-process SUB from network peers.
    func testOnlyFramesFromANetworkPeerCarryMetadata() throws {
        let (inprocPull, inprocPush) = try pair("metadata", .pull, .push)
        let tcpPull = try Socket(context, type: .pull)
        let tcpPush = try Socket(context, type: .push)
        defer { [inprocPull, inprocPush, tcpPull, tcpPush].forEach { $0.close() } }
        for socket in [tcpPull, tcpPush] { try socket.setOption(.linger, 0) }
        try tcpPull.bind("tcp://127.0.0.1:*")
        try tcpPush.connect(tcpPull.lastEndpoint)
        try inprocPush.send(frames: [[1]])
        try tcpPush.send(frames: [[2]])
        let message = Message()
        XCTAssertTrue(try Poller.waitReadable(inprocPull, timeoutMilliseconds: 2_000))
        XCTAssertTrue(try inprocPull.receive(into: message))
        XCTAssertFalse(message.hasMetadata)
        XCTAssertNil(message.sourceConnection)
        XCTAssertTrue(try Poller.waitReadable(tcpPull, timeoutMilliseconds: 5_000))
        XCTAssertTrue(try tcpPull.receive(into: message))
        XCTAssertTrue(message.hasMetadata)
        XCTAssertEqual(message.property("Socket-Type"), "PUSH")
        XCTAssertNotNil(message.sourceConnection)
    }

    func testWouldBlockIsAValueNotAnError() throws {
        let pull = try Socket(context, type: .pull)
        defer { pull.close() }
        try pull.bind("inproc://empty")
        XCTAssertFalse(try pull.receive(into: Message(), dontWait: true))
        XCTAssertNil(try pull.receiveFrames(timeoutMilliseconds: 10))
    }

    func testErrorsCarryErrnoAndTheOperation() throws {
        let socket = try Socket(context, type: .pull)
        defer { socket.close() }
        XCTAssertThrowsError(try socket.bind("bogus://x")) { error in
            let zmqError = error as? ZMQError
            XCTAssertEqual(zmqError?.code, EPROTONOSUPPORT)
            XCTAssertTrue(zmqError?.description.contains("bind PULL bogus://x") ?? false, "\(error)")
        }
        let other = try Socket(context, type: .pull)
        defer { other.close() }
        try socket.bind("inproc://taken")
        XCTAssertThrowsError(try other.bind("inproc://taken")) { error in
            XCTAssertEqual((error as? ZMQError)?.code, EADDRINUSE)
        }
    }

    func testLastEndpointResolvesWildcardPorts() throws {
        let socket = try Socket(context, type: .pull)
        defer { socket.close() }
        try socket.bind("tcp://127.0.0.1:*")
        XCTAssertTrue(socket.lastEndpoint.hasPrefix("tcp://127.0.0.1:"))
        XCTAssertNotEqual(socket.lastEndpoint, "tcp://127.0.0.1:*")
    }

    func testPollerWatchesPlainFileDescriptors() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]); close(ends[1]) }
        var poller = Poller()
        let index = poller.add(fileDescriptor: ends[0])
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 10), 0)
        var byte: UInt8 = 1
        XCTAssertEqual(write(ends[1], &byte, 1), 1)
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 1_000), 1)
        XCTAssertTrue(poller.isReadable(index))
        poller.setWatching(index, false)
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 10), 0)
    }

    func testLibraryCapabilities() {
        XCTAssertGreaterThanOrEqual(Context.libraryVersion.major, 4)
        XCTAssertTrue(Context.hasCapability("ipc"))
    }
}
