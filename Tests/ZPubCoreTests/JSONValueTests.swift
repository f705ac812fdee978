import XCTest

@testable import ZPubCore

final class JSONValueTests: XCTestCase {
    private func valid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let validated = JSONValue.isValid(bytes)
        XCTAssertEqual(validated, JSONValue.parse(bytes) != nil, "parse and isValid agree on \(text)")
        return validated
    }

    func testValidDocuments() {
        for text in [
            "0", "-0", "12", "-1.5e+10", "1E-2", "0.25", "true", "false", "null", #""""#, #""a\"b\\c\/\n\u00e9""#,
            #""\ud83d\ude00""#, "[]", "{}", " [1, \"x\", {\"a\": [null]}] ", #"{"a":1,"a":2}"#, "\"é😀\"",
        ] {
            XCTAssertTrue(valid(text), text)
        }
    }

    func testInvalidDocuments() {
        for text in [
            "", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}",
            "{\"a\":1,}", "\"abc", "\"a\u{01}b\"", #""\x""#, #""\u12""#, #""\ud83d""#, #""\ude00""#, "1 2", "[",
            "]", "'a'", "NaN", "[1]x",
        ] {
            XCTAssertFalse(valid(text), text)
        }
        XCTAssertFalse(JSONValue.isValid([0x22, 0xFF, 0x22]), "not UTF-8")
    }

    /// What a client is told: why, and where.
    func testAProblemIsNamed() {
        let cases: [(String, String?)] = [
            (#"{"a":[1,2]}"#, nil), ("", "invalid at byte 0"), ("[1,]", "invalid at byte 3"),
            ("[1]x", "more after the value at byte 3"), (#"["\ud83d"]"#, "a lone surrogate escape at byte 2"),
            (#"["ok","\ude00"]"#, "a lone surrogate escape at byte 7"),
            (String(repeating: "[", count: 65), "nested deeper than 64 levels"),
        ]
        for (text, problem) in cases {
            XCTAssertEqual(JSONValue.problem(in: Array(text.utf8)), problem, text)
        }
        XCTAssertEqual(JSONValue.problem(in: [0x22, 0xFF, 0x22]), "not UTF-8")
    }

    func testDeepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertFalse(valid(deep))
        let allowed =
            String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        XCTAssertTrue(valid(allowed))
    }

    func testMembersStringsAndRanges() throws {
        let text = #"{"op":"pub\u0031","list":["a","b"],"payload": {"n": 12345678901234567890} ,"op":"last"}"#
        let bytes = Array(text.utf8)
        let value = try XCTUnwrap(JSONValue.parse(bytes))
        XCTAssertEqual(value["op"]?.string, "last", "the last of a repeated key, as JSONSerialization")
        XCTAssertEqual(value["list"]?.strings, ["a", "b"])
        XCTAssertNil(value["missing"])
        let payload = try XCTUnwrap(value["payload"])
        XCTAssertEqual(String(decoding: bytes[payload.range], as: UTF8.self), #"{"n": 12345678901234567890}"#)
        let escaped = try XCTUnwrap(JSONValue.parse(Array(#""\u00e9\ud83d\ude00\t""#.utf8)))
        XCTAssertEqual(escaped.string, "é😀\t")
    }
}
