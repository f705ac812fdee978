import Foundation
import XCTest
import ZPubCore

@testable import ZPubGateway

final class ClientRequestTests: XCTestCase {
    private func parse(_ text: String) -> Result<ClientRequest, ClientRequest.Violation> {
        ClientRequest.parse(Array(text.utf8))
    }

    func testRequests() {
        XCTAssertEqual(try parse(#"{"op":"subscribe","prefix":"a."}"#).get(), .subscribe(["a."], token: nil))
        XCTAssertEqual(
            try parse(#"{"op":"subscribe","prefixes":["a.","b."],"token":"t"}"#).get(),
            .subscribe(["a.", "b."], token: "t"))
        XCTAssertEqual(try parse(#"{"op":"unsubscribe","prefix":""}"#).get(), .unsubscribe([""]))
        XCTAssertEqual(
            try parse(#"{"op":"publish","topic":"chat.x","payload":"hi"}"#).get(),
            .publish(topic: "chat.x", payload: Array("hi".utf8), token: nil))
        XCTAssertEqual(
            try parse(#"{"op":"publish","topic":"chat.x","payload":{"n":1}}"#).get(),
            .publish(topic: "chat.x", payload: Array(#"{"n":1}"#.utf8), token: nil))
        XCTAssertEqual(try parse(#"{"op":"ping"}"#).get(), .ping)
        XCTAssertEqual(
            try parse(#"{"op":"subscribe","prefix":"h.","since":4711}"#).get(),
            .subscribe(["h."], token: nil, since: 4711))
        XCTAssertEqual(
            try parse(#"{"op":"subscribe","prefix":"h.","since":0}"#).get(), .subscribe(["h."], token: nil, since: 0))
    }

    func testSinceMustBeAWholeNumber() {
        for bad in [#""12""#, "-1", "1.5", "1e3", "null", "18446744073709551616"] {
            guard case .failure(let violation) = parse(#"{"op":"subscribe","prefix":"h.","since":\#(bad)}"#) else {
                XCTFail("since \(bad) was accepted")
                continue
            }
            XCTAssertEqual(violation.code, 1008)
            XCTAssertTrue(violation.reason.contains("since"), violation.reason)
        }
    }

    func testViolationsCloseWithACodeAndAReason() {
        let cases: [(String, UInt16)] = [
            ("subscribe a.", 1007), ("[1,2]", 1007), ("", 1007), (#"{"prefix":"a"}"#, 1008),
            (#"{"op":"frobnicate"}"#, 1008), (#"{"op":"subscribe"}"#, 1008),
            (#"{"op":"subscribe","prefixes":[]}"#, 1008),
            (#"{"op":"subscribe","prefix":"a.","prefixes":["b."]}"#, 1008),
            (#"{"op":"publish","topic":"t","payload":"AAEC","encoding":"base64"}"#, 1008),
            (#"{"op":"publish","topic":"","payload":"x"}"#, 1008), (#"{"op":"publish","topic":"t"}"#, 1008),
        ]
        for (text, code) in cases {
            guard case .failure(let violation) = parse(text) else {
                XCTFail("\(text) was accepted")
                continue
            }
            XCTAssertEqual(violation.code, code, text)
            XCTAssertFalse(violation.reason.isEmpty)
            XCTAssertLessThanOrEqual(violation.reason.utf8.count, 123, "fits a close frame: \(text)")
        }
        // Not JSON, and why: a probe's 5,000-deep request was told "not a JSON object".
        for (text, reason) in [
            (String(repeating: #"{"a":"#, count: 5_000), "not JSON (nested deeper than 64 levels)"),
            (#"{"op":"ping","x":"\uDC00"}"#, "not JSON (a lone surrogate escape at byte 18)"),
            ("subscribe a.", "not JSON (invalid at byte 0)"), ("[1,2]", "not a JSON object"),
        ] {
            guard case .failure(let violation) = parse(text) else {
                XCTFail("\(text.prefix(40)) was accepted")
                continue
            }
            XCTAssertTrue(violation.reason.hasPrefix(reason), violation.reason)
            XCTAssertLessThanOrEqual(violation.reason.utf8.count, 123, violation.reason)
        }
    }

    /// A field an op does not take closes the connection, named: "snce" subscribed live only,
    /// the history asked for skipped without a word.
    func testAFieldTheOpDoesNotTakeIsRefusedByName() {
        for (text, reason) in [
            (
                #"{"op":"subscribe","prefix":"h.","snce":4711}"#,
                #"subscribe: unknown field "snce" (it takes prefix, prefixes, since, token)"#
            ),
            (
                #"{"op":"unsubscribe","prefix":"h.","since":1}"#,
                #"unsubscribe: unknown field "since" (it takes prefix, prefixes, token)"#
            ),
            (
                #"{"op":"publish","topic":"t","payload":1,"id":7}"#,
                #"publish: unknown field "id" (it takes topic, payload, token)"#
            ),
            (#"{"op":"ping","prefix":"a."}"#, #"ping: unknown field "prefix" (it takes token)"#),
            (#"{"op":"refresh","token":"x","exp":1}"#, #"refresh: unknown field "exp" (it takes token)"#),
            (
                #"{"op":"ping","\#(String(repeating: "k", count: 200))":1}"#,
                #"ping: unknown field "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk..." (it takes token)"#
            ),
        ] {
            guard case .failure(let violation) = parse(text) else {
                XCTFail("\(text) was accepted")
                continue
            }
            XCTAssertEqual(violation.code, 1008, text)
            XCTAssertEqual(violation.reason, reason)
            XCTAssertLessThanOrEqual(violation.reason.utf8.count, 123, violation.reason)
        }
        // Cut by bytes, between characters: 40 three-byte characters keep 10 (30 bytes).
        let wide = String(repeating: "\u{20AC}", count: 40)
        guard case .failure(let violation) = parse(#"{"op":"ping","\#(wide)":1}"#) else {
            return XCTFail("a field of 40 euro signs was accepted")
        }
        XCTAssertEqual(
            violation.reason, #"ping: unknown field "\#(String(repeating: "\u{20AC}", count: 10))..." (it takes token)"#
        )
        XCTAssertLessThanOrEqual(violation.reason.utf8.count, 123)
        // "token" goes with any request; "op" and the op's own fields are taken.
        XCTAssertEqual(try parse(#"{"op":"ping","token":"t"}"#).get(), .ping)
        XCTAssertEqual(try parse(#"{"op":"unsubscribe","prefixes":["a."],"token":"t"}"#).get(), .unsubscribe(["a."]))
    }

    func testAKeptMessageCarriesItsHistorySequence() {
        let frames = [Array("h.x".utf8), Array("{\"a\":1}".utf8)]
        XCTAssertEqual(
            WireFormat.webSocket(frames, sequence: 4711),
            .text(Array(#"{"type":"message","topic":"h.x","encoding":"json","payload":{"a":1},"seq":4711}"#.utf8)))
        XCTAssertEqual(WireFormat.webSocket(frames), .text(MessageJSON.readableText(frames)!), "no sequence: as before")
        XCTAssertEqual(WireFormat.historyEventID(9), "h9")
        XCTAssertEqual(WireFormat.historySequence(fromEventID: "h9"), 9)
        XCTAssertNil(WireFormat.historySequence(fromEventID: "9-1"))
        XCTAssertNil(WireFormat.historySequence(fromEventID: "hx"))
    }
}
