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

    /// A WebSocket client's publishes waiting for the link are bounded; each one the link
    /// handles gives its place back.
    func testPublishesWaitingForTheLinkAreBounded() {
        let (outbox, _) = outbox(limit: 10)
        for number in 1...ClientOutbox.maxPublishesWaiting { XCTAssertTrue(outbox.holdPublish(), "publish \(number)") }
        XCTAssertFalse(outbox.holdPublish(), "one more waits for nothing: refused")
        XCTAssertFalse(outbox.holdPublish())
        XCTAssertEqual(outbox.publishesWaitingCount, ClientOutbox.maxPublishesWaiting, "refusals take no place")
        outbox.publishHandled()
        XCTAssertTrue(outbox.holdPublish(), "the link handled one: room for one")
        XCTAssertFalse(outbox.holdPublish())
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

    /// A subscribe's confirmation reaches the session after the messages queued before it are
    /// written, and before those queued after: the session's `subscribed` replies go out in
    /// that place (here a handler writes "c" where the session would write them). It is not
    /// counted against the limit.
    func testAConfirmationIsToldInOrderWithTheMessages() throws {
        let (outbox, channel) = outbox(limit: 2)
        let seen = Seen()
        try channel.pipeline.syncOperations.addHandler(seen)
        XCTAssertTrue(outbox.offer(.webSocketText("1")))
        XCTAssertTrue(outbox.offer(.webSocketText("2")))
        outbox.confirm(.confirmation(7))
        XCTAssertFalse(outbox.offer(.webSocketText("3")), "2 messages are queued: the limit")
        channel.embeddedEventLoop.run()
        XCTAssertTrue(outbox.offer(.webSocketText("3")))
        outbox.confirm(.confirmation(8))
        XCTAssertTrue(outbox.offer(.webSocketText("4")), "a confirmation is not counted: 2 messages queued with it")
        channel.embeddedEventLoop.run()
        var written: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            // A text frame of fewer than 126 bytes: two header bytes, then the text.
            written.append(String(decoding: buffer.readableBytesView.dropFirst(2), as: UTF8.self))
        }
        XCTAssertEqual(seen.tickets, [7, 8])
        XCTAssertEqual(written, ["1", "2", "c", "3", "c", "4"])
        _ = try channel.finish()
    }

    /// Writes "c" (as a frame would be: two header bytes first) at each confirmation.
    private final class Seen: ChannelInboundHandler {
        typealias InboundIn = Never
        var tickets: [UInt64] = []

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard let confirmed = event as? SubscriptionConfirmed else { return }
            tickets.append(confirmed.ticket)
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: [0x81, 1, UInt8(ascii: "c")])), promise: nil)
        }
    }
}
