import Foundation
import Synchronization
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

    /// A SUB that has not read since its peer came back (a new broker on the same port) sends
    /// a subscription change, and the subscriptions it held, to the new peer at once: libzmq
    /// takes a reconnection in only when the socket processes its commands, which
    /// zmq_setsockopt does not (`Socket.setOption`).
    func testASubscriptionChangeAfterAReconnectionReachesTheNewPeer() throws {
        let first = try Socket(context, type: .xpub)
        try first.setOption(.linger, 0)
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = first.lastEndpoint
        let subscriber = try Socket(context, type: .sub)
        try subscriber.setOption(.linger, 0)
        try subscriber.startMonitor("inproc://resubscribe-monitor", events: .handshakeSucceeded)
        let monitor = try Socket(context, type: .pair)
        try monitor.setOption(.linger, 0)
        try monitor.connect("inproc://resubscribe-monitor")
        defer {
            subscriber.close()
            monitor.close()
        }
        try subscriber.connect(endpoint)
        try subscriber.setOption(.subscribe, bytes: Array("a".utf8))
        XCTAssertEqual(try first.receiveFrames(timeoutMilliseconds: 10_000), [[1] + Array("a".utf8)])
        // Unread in the subscriber, as a flood's are.
        for _ in 0..<10 { XCTAssertTrue(try first.send(frames: [Array("a".utf8)])) }
        first.close()
        let second = try Socket(context, type: .xpub)
        try second.setOption(.linger, 0)
        defer { second.close() }
        // The port is free once libzmq's I/O thread has closed the first listener.
        let deadline = Date().addingTimeInterval(10)
        while true {
            do {
                try second.bind(endpoint)
                break
            } catch  where Date() < deadline {
                usleep(10_000)
            }
        }
        var handshakes = 0
        while handshakes < 2 && Date() < deadline {
            if try monitor.readMonitorEvent() != nil { handshakes += 1 } else { usleep(10_000) }
        }
        XCTAssertEqual(handshakes, 2, "connected to the second peer")
        try subscriber.setOption(.subscribe, bytes: Array("m".utf8))
        var received: Set<[UInt8]> = []
        while received.count < 2, let frames = try second.receiveFrames(timeoutMilliseconds: 5_000) {
            received.insert(frames[0])
        }
        XCTAssertEqual(received, [[1] + Array("a".utf8), [1] + Array("m".utf8)])
    }

    func testWouldBlockIsAValueNotAnError() throws {
        let pull = try Socket(context, type: .pull)
        defer { pull.close() }
        try pull.bind("inproc://empty")
        XCTAssertFalse(try pull.receive(into: Message(), dontWait: true))
        XCTAssertNil(try pull.receiveFrames(timeoutMilliseconds: 10))
    }

    /// A signal caught while a wait with a timeout is under way does not end it: nil means
    /// the time is up. zmq_poll ends with EINTR on a signal, and that was taken for a timeout
    /// (`zpub pub --pub` then stopped waiting for its subscription at once).
    func testACaughtSignalDoesNotCutAWaitShort() throws {
        let pull = try Socket(context, type: .pull)
        defer { pull.close() }
        try pull.bind("inproc://signalled")
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        XCTAssertEqual(sigaction(SIGUSR1, &action, &previous), 0)
        // Signals this thread every 20 ms until the wait is over; stopped before the handler
        // goes (SIGUSR1's default action ends the process).
        let waiter = pthread_self()
        let waiting = Atomic<Bool>(true)
        let stopped = DispatchSemaphore(value: 0)
        Thread {
            var sent = 0
            while waiting.load(ordering: .relaxed) {
                if sent < 10 { pthread_kill(waiter, SIGUSR1) }
                sent += 1
                usleep(20_000)
            }
            stopped.signal()
        }.start()
        let start = Date()
        let frames = try pull.receiveFrames(timeoutMilliseconds: 300)
        let waited = Date().timeIntervalSince(start)
        waiting.store(false, ordering: .relaxed)
        stopped.wait()
        sigaction(SIGUSR1, &previous, nil)
        XCTAssertNil(frames)
        XCTAssertGreaterThanOrEqual(waited, 0.29, "the wait ended early")
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

    /// zpub-bench holds its zmq_proxy baseline by ending it with TERMINATE and calling it again:
    /// the second call must forward what was queued in between, over the same connections.
    func testSteerableProxyEndsOnTerminateAndResumesOverTheSameSockets() throws {
        let (frontend, producer) = try pair("steer-in", .pull, .push)
        let (backend, sink) = try pair("steer-out", .push, .pull)
        let (control, steer) = try pair("steer-control", .pair, .pair)
        let ended = DispatchSemaphore(value: 0)
        let again = DispatchSemaphore(value: 0)
        // The proxy's sockets belong to its thread until it has returned: if a wait below timed
        // out, shutting the context down makes the proxy return before anything is closed.
        var proxyRunning = true
        defer {
            if proxyRunning {
                context.shutdown()
                again.signal()
                _ = ended.wait(timeout: .now() + 10)
                _ = ended.wait(timeout: .now() + 10)
            }
            [frontend, producer, backend, sink, control, steer].forEach { $0.close() }
        }
        let results = ResultBox()
        let sockets = HandedOver(frontend: frontend, backend: backend, control: control)
        let thread = Thread {
            let proxy = {
                try? proxySteerable(frontend: sockets.frontend, backend: sockets.backend, control: sockets.control)
            }
            results.append(proxy())
            ended.signal()
            again.wait()
            results.append(proxy())
            ended.signal()
        }
        thread.start()

        try producer.send(text: "first")
        XCTAssertEqual(try sink.receiveFrames(timeoutMilliseconds: 5_000), [Array("first".utf8)])
        try steer.send(text: "TERMINATE")
        XCTAssertEqual(ended.wait(timeout: .now() + 10), .success, "TERMINATE ends the proxy")
        try producer.send(text: "queued while stopped")
        again.signal()
        XCTAssertEqual(try sink.receiveFrames(timeoutMilliseconds: 5_000), [Array("queued while stopped".utf8)])
        try steer.send(text: "TERMINATE")
        XCTAssertEqual(ended.wait(timeout: .now() + 10), .success)
        proxyRunning = results.values.count < 2
        XCTAssertEqual(results.values, [true, true], "both calls ended by TERMINATE, not by an error")
    }

    func testLibraryCapabilities() {
        XCTAssertGreaterThanOrEqual(Context.libraryVersion.major, 4)
        XCTAssertTrue(Context.hasCapability("ipc"))
    }
}

/// The proxy's sockets, used by its thread alone while it runs (the test thread only closes them
/// after both calls have ended).
private struct HandedOver: @unchecked Sendable {
    let frontend: Socket
    let backend: Socket
    let control: Socket
}

/// Results handed from the proxy's thread to the test's, under a lock.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Bool?] = []
    func append(_ value: Bool?) { lock.withLock { stored.append(value) } }
    var values: [Bool?] { lock.withLock { stored } }
}
