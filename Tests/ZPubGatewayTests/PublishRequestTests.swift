import XCTest
import ZPubCore

@testable import ZPubGateway

final class PublishRequestTests: XCTestCase {
    private func parse(_ text: String) -> Result<[[[UInt8]]], PublishRequest.Problem> {
        PublishRequest.parse(Array(text.utf8))
    }

    private func frames(_ strings: String...) -> [[UInt8]] { strings.map { Array($0.utf8) } }

    func testOneMessageABatchAndTheirPayloads() throws {
        XCTAssertEqual(try parse(#"{"topic":"a.1","payload":"hi"}"#).get(), [frames("a.1", "hi")])
        XCTAssertEqual(
            try parse(#"{"topic":"a.1","payload":{"n": 1.50}}"#).get(), [frames("a.1", #"{"n": 1.50}"#)],
            "any other JSON value goes as the client wrote it")
        XCTAssertEqual(try parse(#"{"topic":"a.1","frames":["x","y"]}"#).get(), [frames("a.1", "x", "y")])
        XCTAssertEqual(try parse(#"{"topic":"a.1","frames":[]}"#).get(), [frames("a.1")])
        XCTAssertEqual(
            try parse(#"{"messages":[{"topic":"a.1","payload":"1"},{"topic":"a.2","frames":["2"]}]}"#).get(),
            [frames("a.1", "1"), frames("a.2", "2")])
    }

    /// The shape zpub prints a message in is published back byte for byte: what a client
    /// received, sent on, is the same message.
    func testTheShapeZpubPrintsIsPublishedAsItWas() throws {
        XCTAssertEqual(
            try parse(#"{"topic":"a.1","encoding":"base64","payload":"AAEC"}"#).get(),
            [[Array("a.1".utf8), [0, 1, 2]]])
        XCTAssertEqual(
            try parse(#"{"type":"message","topic":"a.1","encoding":"base64","payload":["AA==","AQ=="],"seq":7}"#).get(),
            [[Array("a.1".utf8), [0], [1]]])
        XCTAssertEqual(try parse(#"{"topic":"a.1","encoding":"json","payload":"q"}"#).get(), [frames("a.1", #""q""#)])
        XCTAssertEqual(try parse(#"{"topic":"a.1","encoding":"text","payload":"q"}"#).get(), [frames("a.1", "q")])
        XCTAssertEqual(
            try parse(#"{"topic":"a.1","encoding":"frames","payload":["x","y"]}"#).get(), [frames("a.1", "x", "y")])
        XCTAssertEqual(
            try parse(#"{"topic":"?","topic_base64":"/w==","payload":"x"}"#).get(), [[[255], Array("x".utf8)]])
        for frames in [
            [Array("t".utf8), [0, 255]], [Array("t".utf8), Array("text".utf8)], [Array("t".utf8), Array("{}".utf8)],
        ] {
            XCTAssertEqual(try PublishRequest.parse(MessageJSON.write(frames)).get(), [frames], "round trip")
        }
    }

    func testEveryProblemIsExplained() {
        let cases: [(String, String)] = [
            ("not json", "not JSON (invalid at byte 0)"), ("[1]", "not a JSON object"),
            (String(repeating: "[", count: 100), "not JSON (nested deeper than 64 levels)"),
            (#"{"payload":"x"}"#, #"needs "topic""#), (#"{"topic":"","payload":"x"}"#, #"needs "topic""#),
            (#"{"topic":"a"}"#, #""payload" (any JSON value) or "frames""#),
            (#"{"topic":"a","payload":1,"frames":[]}"#, "not both"),
            (#"{"topic":"a","frames":[1]}"#, "array of strings"),
            (#"{"topic":"$zpub/seq/x","payload":1}"#, "zpubd's own"),
            (#"{"messages":[]}"#, "non-empty array"),
            (#"{"messages":[{"topic":"a","payload":1},{"topic":"b"}]}"#, "messages[1]:"),
            // Fields it does not know were ignored: "encoding" published the base64 text, a
            // "topic" beside "messages" was dropped (a walkthrough).
            (#"{"topic":"a","payload":"x","encodng":"base64"}"#, #"unknown field "encodng""#),
            (#"{"messages":[{"topic":"a","payload":1}],"topic":"b","payload":2}"#, #"no other field ("#),
            (#"{"topic":"a","payload":"!!","encoding":"base64"}"#, "payload frame 0 is not base64"),
            (#"{"topic":"a","payload":1,"encoding":"text"}"#, #""payload" is a string"#),
            (#"{"topic":"a","payload":"x","encoding":"utf-16"}"#, #""encoding" is json, text, frames or base64"#),
            (#"{"type":"gap","topic":"a","payload":"x"}"#, #""type", when given, is "message""#),
        ]
        for (body, expected) in cases {
            guard case .failure(let problem) = parse(body) else {
                XCTFail("\(body) was accepted")
                continue
            }
            XCTAssertTrue(problem.message.contains(expected), "\(body): \(problem.message)")
        }
        let tooMany =
            "{\"messages\":["
            + Array(repeating: #"{"topic":"a","payload":1}"#, count: 1_001)
            .joined(separator: ",") + "]}"
        guard case .failure(let problem) = parse(tooMany) else { return XCTFail("1,001 messages accepted") }
        XCTAssertTrue(problem.message.contains("at most 1000"), problem.message)
    }
}
