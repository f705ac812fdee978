import Foundation
import XCTest
import ZPubCore

@testable import ZPubGateway

final class WireFormatTests: XCTestCase {
    private func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func testBinaryMessagesAreLengthPrefixedFramesOverWebSocketAndBase64OverSSE() throws {
        let frames: [[UInt8]] = [Array("bin".utf8), [0xFF, 0x00], []]
        XCTAssertEqual(
            WireFormat.webSocket(frames),
            .binary([0, 0, 0, 3] + Array("bin".utf8) + [0, 0, 0, 2, 0xFF, 0x00] + [0, 0, 0, 0]))
        let sse = try object(WireFormat.sseData(frames))
        XCTAssertEqual(sse["encoding"] as? String, "base64")
        XCTAssertEqual(sse["payload"] as? [String], ["/wA=", ""])
        XCTAssertNil(sse["topic_base64"])
        let badTopic = try object(WireFormat.sseData([[0xC3, 0x28], Array("x".utf8)], sequence: 5))
        XCTAssertEqual(badTopic["topic_base64"] as? String, "wyg=")
        XCTAssertEqual(badTopic["seq"] as? Int, 5)
    }

    func testServerSentEventsAndTheirIDs() {
        XCTAssertEqual(
            String(decoding: WireFormat.serverSentEvent(id: "7-3", event: nil, data: Array("{}".utf8)), as: UTF8.self),
            "id: 7-3\ndata: {}\n\n")
        XCTAssertEqual(WireFormat.eventID(sequence: 7, number: 3), "7-3")
        XCTAssertEqual(WireFormat.sequence(fromEventID: "7-3"), 7)
        XCTAssertEqual(WireFormat.sequence(fromEventID: "42"), 42)
        XCTAssertNil(WireFormat.sequence(fromEventID: "abc"))
        XCTAssertNil(WireFormat.sequence(fromEventID: ""))
        // With the history position of the kept messages passed before it.
        XCTAssertEqual(WireFormat.eventID(sequence: 7, number: 3, history: 12), "7-3-h12")
        XCTAssertEqual(WireFormat.sequence(fromEventID: "7-3-h12"), 7)
        XCTAssertEqual(WireFormat.historySequence(inCacheEventID: "7-3-h12"), 12)
        XCTAssertNil(WireFormat.historySequence(inCacheEventID: "7-3"))
        XCTAssertNil(WireFormat.historySequence(inCacheEventID: "7-3-hx"))
        XCTAssertNil(WireFormat.historySequence(fromEventID: "7-3-h12"), "not a history id")
    }
}
