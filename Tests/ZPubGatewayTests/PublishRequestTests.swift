import XCTest

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
