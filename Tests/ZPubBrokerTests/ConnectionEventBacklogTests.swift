import XCTest
import ZPubCore
import ZeroMQ

@testable import ZPubBroker

#if canImport(Glibc)
    import Glibc
#endif

/// The bound on what the connection event reader queues for a forwarding loop that is behind
/// (`ConnectionEventBacklog`), and the summary that takes over past it. End to end, with the
/// loop held and thousands of connections: `FaultTests`.
final class ConnectionEventBacklogTests: XCTestCase {
    private let listener = "tcp://0.0.0.0:5556"

    private func event(_ kind: SocketEvents, _ value: Int32 = 9, _ endpoint: String? = nil) -> MonitorEvent {
        MonitorEvent(event: kind, value: value, endpoint: endpoint ?? listener)
    }

    func testEventsAreQueuedUpToTheLimitThenSummarizedUntilTheLoopTakesTheSummary() {
        let backlog = ConnectionEventBacklog(limit: 2)
        XCTAssertEqual(backlog.admit(event(.accepted), of: .pull, accepted: nil), .queue)
        XCTAssertEqual(backlog.admit(event(.accepted), of: .pull, accepted: nil), .queue)
        XCTAssertEqual(backlog.admit(event(.accepted), of: .pull, accepted: nil), .summarized(wakeLoop: true))
        XCTAssertEqual(
            backlog.admit(event(.disconnected), of: .pull, accepted: nil), .summarized(wakeLoop: false),
            "one wake-up per summary: the mailbox holds at most one")
        // The loop handles the two queued events: below the limit again, but a summary is
        // waiting, and an event queued now would come after the summary's command, whose
        // taking applies events added after this one: out of order.
        backlog.handled()
        backlog.handled()
        XCTAssertEqual(backlog.admit(event(.accepted), of: .pull, accepted: nil), .summarized(wakeLoop: false))
        let summary = backlog.takeSummary()
        XCTAssertEqual(summary.events, 3)
        XCTAssertEqual(summary.opened[.pull], 2)
        XCTAssertEqual(summary.closed[.pull], 1)
        XCTAssertTrue(backlog.takeSummary().isEmpty, "taken once")
        XCTAssertEqual(backlog.admit(event(.accepted), of: .pull, accepted: nil), .queue, "queued again once taken")
    }

    func testASubscribersDescriptorClosedAndReusedIsClosedThenOpened() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer { ends.forEach { close($0) } }
        let accepted = try XCTUnwrap(SubscriberReachability.Accepted(descriptor: ends[0]))
        var summary = ConnectionEventSummary()
        // Descriptor 7: an earlier connection closes, a new one takes the number.
        summary.add(event(.disconnected, 7), of: .xpub, accepted: nil)
        summary.add(event(.accepted, 7), of: .xpub, accepted: accepted)
        // Descriptor 8: opened and closed within the summary; its close still applies (the
        // loop may have read subscriptions from it).
        summary.add(event(.accepted, 8), of: .xpub, accepted: accepted)
        summary.add(event(.disconnected, 8), of: .xpub, accepted: nil)
        // Descriptor 9: accepted, closed, accepted again.
        summary.add(event(.accepted, 9), of: .xpub, accepted: accepted)
        summary.add(event(.disconnected, 9), of: .xpub, accepted: nil)
        summary.add(event(.accepted, 9), of: .xpub, accepted: accepted)
        // A producer's connection: counted, no descriptor kept.
        summary.add(event(.accepted, 10), of: .pull, accepted: nil)
        summary.add(event(.handshakeFailedProtocol, 11), of: .pull, accepted: nil)
        summary.add(event(.acceptFailed, 24), of: .xpub, accepted: nil)
        XCTAssertEqual(summary.events, 10)
        XCTAssertEqual(summary.closedSubscribers, [7, 8, 9])
        XCTAssertEqual(Set(summary.openedSubscribers.keys), [7, 9])
        XCTAssertEqual(summary.opened, [.xpub: 4, .pull: 1])
        XCTAssertEqual(summary.closed, [.xpub: 3])
        XCTAssertEqual(summary.handshakeFailures, 1)
    }

    func testTheEndpointsTableIsBounded() {
        var summary = ConnectionEventSummary()
        for i in 0..<(ConnectionEventSummary.maximumEndpoints + 50) {
            summary.add(event(.connectRetried, 0, "tcp://10.0.0.1:\(i)"), of: .xsub, accepted: nil)
            summary.add(event(.disconnected, 0, "tcp://10.0.0.2:\(i)"), of: .pull, accepted: nil)
        }
        XCTAssertEqual(summary.links.count, ConnectionEventSummary.maximumEndpoints)
        XCTAssertEqual(summary.events, 2 * (ConnectionEventSummary.maximumEndpoints + 50), "every event counted")
        XCTAssertTrue(summary.links.keys.allSatisfy { $0.hasPrefix("tcp://10.0.0.1:") }, "upstream links are XSUB's")
    }
}
