import NIOCore
import NIOEmbedded
import XCTest

@testable import ZPubGateway

/// How many messages may wait for a client (`client_queue`): live ones, a catch-up's, and live
/// ones behind a catch-up. Nothing is written here until the event loop runs.
final class ClientOutboxTests: XCTestCase {
    private let item = ClientOutbox.Item.webSocketText("{}")

    private func outbox(limit: Int) -> (ClientOutbox, EmbeddedChannel) {
        let channel = EmbeddedChannel()
        let outbox = ClientOutbox(
            id: 1, kind: .webSocket, channel: channel, limit: limit, counters: GatewayCounters())
        return (outbox, channel)
    }

    func testLiveMessagesBeyondTheLimitAreRefused() {
        let (outbox, _) = outbox(limit: 10)
        for number in 1...10 { XCTAssertTrue(outbox.offer(item), "live message \(number)") }
        XCTAssertFalse(outbox.offer(item), "the 11th: too slow")
    }

    /// A catch-up may queue 10 times the limit; live messages that arrive before it is written
    /// wait behind it, however fast the client reads, and may be as many again. Measured
    /// against the limit alone, 300 of them (60 ms at 5,000 a second) dropped a client that
    /// was reading its replay as fast as it came. Once everything is written, the limit holds.
    func testLiveMessagesBehindACatchUpHaveTheCatchUpsAllowance() throws {
        let (outbox, channel) = outbox(limit: 10)
        for number in 1...100 { XCTAssertTrue(outbox.offer(item, catchingUp: true), "catch-up message \(number)") }
        XCTAssertFalse(outbox.offer(item, catchingUp: true), "a catch-up's bound: 10 x the limit")
        for number in 1...100 { XCTAssertTrue(outbox.offer(item), "live message \(number) behind the catch-up") }
        XCTAssertFalse(outbox.offer(item), "10 x the limit behind the catch-up's 100")

        channel.embeddedEventLoop.run()
        XCTAssertEqual(outbox.queuedCount, 0, "all written")
        for number in 1...10 { XCTAssertTrue(outbox.offer(item), "live message \(number) after") }
        XCTAssertFalse(outbox.offer(item), "the limit again")
        _ = try channel.finish()
    }
}
