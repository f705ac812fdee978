import CKernel
import XCTest
import ZPubCore

@testable import ZPubBroker

#if canImport(Glibc)
    import Glibc
#endif

/// What a pair's passive broker counts as a client (`SubscriberReachability`), on real kernel
/// sockets: loopback TCP connections whose far end sends (as a subscriber's PONGs do) or stops,
/// a partition made with a socket filter that drops every packet, and Unix sockets. The
/// takeover it decides is tested end to end in `PairTests` (namespaces, a real partition).
final class SubscriberReachabilityTests: XCTestCase {
    private var descriptors: [Int32] = []

    override func tearDown() {
        for descriptor in descriptors { close(descriptor) }
    }

    /// A loopback TCP connection: the accepted end (the broker's) and the connecting one.
    private func tcpConnection() throws -> (accepted: Int32, client: Int32) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                XCTAssertEqual(bind(listener, raw, length), 0)
                XCTAssertEqual(listen(listener, 1), 0)
                XCTAssertEqual(getsockname(listener, raw, &length), 0)
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                descriptors.append(client)
                guard connect(client, raw, length) == 0 else { throw POSIXError(.ECONNREFUSED) }
            }
        }
        let accepted = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        descriptors.append(accepted)
        return (accepted, descriptors[descriptors.count - 2])
    }

    private func now() -> UInt64 { SystemClock.monotonicNanoseconds() }

    /// A count that knows one connection, seen accepted `at` (now by default).
    private func knowing(_ descriptor: Int32, at seen: UInt64? = nil) throws -> SubscriberReachability {
        var reachability = SubscriberReachability()
        let accepted = SubscriberReachability.Accepted(descriptor: descriptor, nowNanoseconds: seen ?? now())
        reachability.opened(descriptor: descriptor, try XCTUnwrap(accepted))
        return reachability
    }

    private func send(_ descriptor: Int32) {
        var byte: UInt8 = 1
        XCTAssertEqual(write(descriptor, &byte, 1), 1)
    }

    /// Whether `reachability` counts `expected` within 10 s, the client sending every 20 ms
    /// if `sending` (a live subscriber answering pings).
    private func waitForCount(
        _ expected: Int, of reachability: SubscriberReachability, silence: UInt32, sending client: Int32? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let deadline = Date().addingTimeInterval(10)
        var count = -1
        while Date() < deadline {
            if let client { send(client) }
            count = reachability.reachable(silenceMilliseconds: silence, nowNanoseconds: now())
            if count == expected { return }
            usleep(20_000)
        }
        XCTFail("counted \(count), not \(expected), for 10 s", file: file, line: line)
    }

    func testATCPConnectionCountsOnceOldEnoughWhileItsPeerSends() throws {
        let (accepted, client) = try tcpConnection()
        let opened = now()
        let reachability = try knowing(accepted, at: opened)
        send(client)
        XCTAssertEqual(
            reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: opened), 0,
            "younger than the silence it is judged by: a connection that says nothing must not count at once")
        waitForCount(1, of: reachability, silence: 200, sending: client)
        // The peer falls silent (or its PONGs stop coming): it stops counting.
        waitForCount(0, of: reachability, silence: 200)
        waitForCount(1, of: reachability, silence: 200, sending: client)
    }

    /// Packets from the peer no longer arrive (what a partition does): it stops counting
    /// although it keeps sending; only data that arrives counts.
    func testAPeerWhosePacketsNoLongerArriveStopsCounting() throws {
        let (accepted, client) = try tcpConnection()
        let reachability = try knowing(accepted)
        waitForCount(1, of: reachability, silence: 200, sending: client)
        XCTAssertEqual(ckernel_set_drop_all_filter(accepted, 1), 0, String(cString: strerror(errno)))
        waitForCount(0, of: reachability, silence: 200, sending: client)
    }

    /// One that connects and says nothing (a health check, a scanner): never, neither while
    /// young nor later.
    func testAConnectionThatNeverSendsNeverCounts() throws {
        let (accepted, _) = try tcpConnection()
        let reachability = try knowing(accepted)
        let until = Date().addingTimeInterval(0.6)
        while Date() < until {
            XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now()), 0)
            usleep(20_000)
        }
    }

    /// An ipc peer is on this host: no partition between, it counts at once. A descriptor
    /// closed, or reused by another socket before the disconnection event, does not.
    func testAUnixSocketCountsAndAClosedOrReusedDescriptorDoesNot() throws {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        descriptors.append(pair[1])
        var reachability = try knowing(pair[0])
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now()), 1)
        close(pair[0])
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now()), 0, "closed")
        // Another socket under the same number (as the next accept() could get it).
        var other: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &other), 0)
        descriptors += other
        XCTAssertEqual(dup2(other[0], pair[0]), pair[0], "the descriptor was reused")
        descriptors.append(pair[0])
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now()), 0, "another socket")
        XCTAssertEqual(reachability.count, 1, "until its disconnection event")
        reachability.closed(descriptor: pair[0])
        XCTAssertEqual(reachability.count, 0)
    }

    /// A takeover needs one reachable client: the count stops at its limit, and looks at no
    /// more connections than it takes to get there (each costs three system calls).
    func testTheCountStopsAtItsLimit() throws {
        var reachability = SubscriberReachability()
        for _ in 0..<10 {
            var pair: [Int32] = [-1, -1]
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
            descriptors += pair
            reachability.opened(
                descriptor: pair[0], try XCTUnwrap(SubscriberReachability.Accepted(descriptor: pair[0])))
        }
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now()), 10)
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now(), limit: 3), 3)
        XCTAssertEqual(reachability.reachable(silenceMilliseconds: 200, nowNanoseconds: now(), limit: 100), 10)
    }
}
