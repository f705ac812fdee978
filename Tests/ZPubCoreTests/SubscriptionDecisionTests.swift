import XCTest
import ZPubCore

/// The forwarding loop's decisions on subscription frames, in memory: what is applied, what
/// goes upstream, what a new subscriber is sent, what is refused, and snapshot markers.
final class SubscriptionDecisionTests: XCTestCase {
    private func state(lastValuePrefixes: [String] = [], maxSubscriptions: Int = 100, maxLength: Int = 64)
        -> BrokerState
    {
        var configuration = BrokerConfiguration()
        configuration.lastValuePrefixes = lastValuePrefixes
        configuration.maxSubscriptions = maxSubscriptions
        configuration.maxSubscriptionLength = maxLength
        var state = BrokerState(configuration: configuration)
        state.lastValueOnSubscribe = true
        return state
    }

    private func frame(_ kind: UInt8, _ prefix: String) -> [UInt8] { [kind] + Array(prefix.utf8) }

    private func handle(_ state: inout BrokerState, _ frame: [UInt8]) -> SubscriptionActions {
        frame.withUnsafeBytes { state.handleSubscriptionFrame($0, nowMilliseconds: 1_000) }
    }

    func testOnlyAPrefixesFirstSubscribeAndLastUnsubscribeGoUpstream() {
        var state = state()
        let first = handle(&state, frame(1, "news."))
        XCTAssertEqual(first.apply, .subscribe)
        XCTAssertTrue(first.forwardUpstream)
        let second = handle(&state, frame(1, "news."))
        XCTAssertEqual(second.apply, .subscribe, "every subscriber's subscription is applied for it")
        XCTAssertFalse(second.forwardUpstream, "publishers already send news. to the broker")
        XCTAssertFalse(handle(&state, frame(0, "news.")).forwardUpstream, "one subscriber still wants it")
        let last = handle(&state, frame(0, "news."))
        XCTAssertEqual(last.apply, .unsubscribe)
        XCTAssertTrue(last.forwardUpstream)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
    }

    func testAnUnknownUnsubscribeIsAppliedButNotForwarded() {
        var state = state()
        let actions = handle(&state, frame(0, "never."))
        XCTAssertEqual(actions.apply, .unsubscribe, "harmless in libzmq, and keeps XPUB's view exact")
        XCTAssertFalse(actions.forwardUpstream)
    }

    func testRefusalsAreNotAppliedNorForwarded() {
        var long = state(maxLength: 4)
        let tooLong = handle(&long, frame(1, "toolong"))
        XCTAssertNil(tooLong.apply)
        XCTAssertFalse(tooLong.forwardUpstream)
        XCTAssertEqual(tooLong.refusal, .tooLong(bytes: 7, limit: 4))

        var full = state(maxSubscriptions: 1)
        _ = handle(&full, frame(1, "a"))
        let refused = handle(&full, frame(1, "b"))
        XCTAssertEqual(refused.refusal, .tableFull(limit: 1))
        XCTAssertNil(refused.apply)
        XCTAssertEqual(handle(&full, frame(1, "a")).apply, .subscribe, "a tracked prefix is still accepted")
    }

    func testANewSubscriberGetsTheNewestCachedValueUnderItsPrefix() {
        var state = state(lastValuePrefixes: ["state."])
        state.lastValue.store([Array("state.a".utf8), Array("1".utf8)], nowMilliseconds: 900)
        state.lastValue.store([Array("state.b".utf8), Array("2".utf8)], nowMilliseconds: 950)
        let actions = handle(&state, frame(1, "state."))
        XCTAssertEqual(actions.lastValue, [Array("state.b".utf8), Array("2".utf8)])
        XCTAssertEqual(state.lastValue.hits, 1)
        XCTAssertNil(handle(&state, frame(1, "state.c")).lastValue, "nothing cached under state.c")
        XCTAssertEqual(state.lastValue.misses, 1)
        XCTAssertNil(handle(&state, frame(1, "other.")).lastValue, "not a cached prefix")
        XCTAssertEqual(state.lastValue.misses, 1, "not a miss either")
    }

    /// The HTTP gateway's SUB (inproc) gets no last value on subscribe: it gives each client
    /// the cached values itself, and a value sent to its one SUB reached every client of a
    /// wider prefix again. Its subscriptions are applied and forwarded as any other.
    func testAnInProcessSubscriberGetsNoLastValueOnSubscribe() {
        var state = state(lastValuePrefixes: ["state."])
        state.lastValue.store([Array("state.a".utf8), Array("1".utf8)], nowMilliseconds: 900)
        let actions = frame(1, "state.").withUnsafeBytes {
            state.handleSubscriptionFrame($0, inProcess: true, nowMilliseconds: 1_000)
        }
        XCTAssertNil(actions.lastValue)
        XCTAssertEqual(actions.apply, .subscribe)
        XCTAssertTrue(actions.forwardUpstream)
        XCTAssertEqual(state.lastValue.hits + state.lastValue.misses, 0, "not looked up")
        XCTAssertNotNil(handle(&state, frame(1, "state.")).lastValue, "another subscriber still gets it")
    }

    /// A frame read after its connection closed is counted (libzmq sends the unsubscription
    /// that balances it), but not applied in XPUB and sent no value: libzmq 4.3.4 would pair it
    /// with a connection it may have freed, and a value meant for that connection alone would
    /// go to every subscriber of the topic.
    func testAFrameFromAClosedConnectionIsCountedButNeitherAppliedNorAnsweredWithAValue() {
        var state = state(lastValuePrefixes: ["state."])
        state.lastValue.store([Array("state.a".utf8), Array("1".utf8)], nowMilliseconds: 900)
        let gone = SubscriberConnections.Identity(descriptor: 9, device: 0, inode: 0, metadata: 0x9000)
        let actions = frame(1, "state.").withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: gone, connectionClosed: true, nowMilliseconds: 1_000)
        }
        XCTAssertNil(actions.apply)
        XCTAssertNil(actions.lastValue)
        XCTAssertTrue(actions.forwardUpstream, "counted as the prefix's first subscription until its unsubscription")
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 1)
        XCTAssertEqual(state.lastValue.hits + state.lastValue.misses, 0, "not looked up")
        let repeated = frame(1, "state.").withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: gone, connectionClosed: true, nowMilliseconds: 1_000)
        }
        XCTAssertNil(repeated.apply)
        XCTAssertNil(repeated.lastValue, "nor for a repeat")
        let leaving = frame(0, "state.").withUnsafeBytes {
            state.handleSubscriptionFrame($0, from: gone, connectionClosed: true, nowMilliseconds: 1_000)
        }
        XCTAssertNil(leaving.apply)
        XCTAssertTrue(leaving.forwardUpstream)
        XCTAssertEqual(state.subscriptions.totalSubscriptions, 0)
        XCTAssertNotNil(handle(&state, frame(1, "state.")).lastValue, "a live subscriber still gets it")
    }

    func testWithoutManualLastValueNothingIsSentOnSubscribe() {
        var state = state(lastValuePrefixes: ["state."])
        state.lastValueOnSubscribe = false
        state.lastValue.store([Array("state.a".utf8), Array("1".utf8)], nowMilliseconds: 900)
        XCTAssertNil(handle(&state, frame(1, "state.")).lastValue)
    }

    func testMarkersAreTheBrokersOwnAndNeverGoUpstream() {
        var state = state()
        let subscribed = handle(&state, frame(1, "$zpub/snapshot/tok1"))
        XCTAssertEqual(subscribed.apply, .subscribe, "the client must receive its marker")
        XCTAssertEqual(subscribed.marker, .subscribed(token: "tok1"))
        XCTAssertFalse(subscribed.forwardUpstream)
        let unsubscribed = handle(&state, frame(0, "$zpub/snapshot/tok1"))
        XCTAssertEqual(unsubscribed.marker, .unsubscribed(token: "tok1"))
        XCTAssertFalse(unsubscribed.forwardUpstream)
        let other = handle(&state, frame(1, "$zpub/other"))
        XCTAssertNil(other.marker)
        XCTAssertFalse(other.forwardUpstream, "everything under $zpub/ stays here")
    }

    func testFramesThatAreNotSubscriptionsMeanNothing() {
        var state = state()
        XCTAssertEqual(handle(&state, []), SubscriptionActions())
        XCTAssertEqual(handle(&state, [2, 65]), SubscriptionActions())
        XCTAssertEqual(state.subscriptions.subscribeEvents, 0)
    }

    func testSequenceMarkerSubscriptionsAreCountedAndStayHere() {
        var state = state()
        let first = handle(&state, frame(1, "$zpub/seq/orders."))
        XCTAssertEqual(first.apply, .subscribe)
        XCTAssertFalse(first.forwardUpstream)
        _ = handle(&state, frame(1, "$zpub/seq/"))
        XCTAssertEqual(state.sequenceMarkerSubscriptions, 2)
        _ = handle(&state, frame(0, "$zpub/seq/orders."))
        _ = handle(&state, frame(0, "$zpub/seq/never"))
        XCTAssertEqual(state.sequenceMarkerSubscriptions, 1, "an unknown unsubscribe changes nothing")
        _ = handle(&state, frame(0, "$zpub/seq/"))
        XCTAssertEqual(state.sequenceMarkerSubscriptions, 0)
    }
}
