import Foundation
import XCTest

@testable import ZPubCore

final class MessageJSONTests: XCTestCase {
    private func text(_ frames: [String]) -> String? {
        MessageJSON.readableText(frames.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
    }

    func testOneJSONFrameIsEmbeddedAsIs() {
        XCTAssertEqual(
            text(["w.paris", #"{"c": 12}"#]),
            #"{"type":"message","topic":"w.paris","encoding":"json","payload":{"c": 12}}"#)
        XCTAssertEqual(text(["n", "12.50"]), #"{"type":"message","topic":"n","encoding":"json","payload":12.50}"#)
    }

    func testOtherTextIsAStringAndSeveralFramesAnArray() {
        XCTAssertEqual(text(["w", "12C"]), #"{"type":"message","topic":"w","encoding":"text","payload":"12C"}"#)
        XCTAssertEqual(
            text(["w", "a\"b\\c\nd\u{01}"]),
            #"{"type":"message","topic":"w","encoding":"text","payload":"a\"b\\c\nd\u0001"}"#)
        XCTAssertEqual(
            text(["w", "12C", "{}"]), #"{"type":"message","topic":"w","encoding":"frames","payload":["12C","{}"]}"#)
        XCTAssertEqual(text(["w"]), #"{"type":"message","topic":"w","encoding":"frames","payload":[]}"#)
        XCTAssertEqual(text(["w", "{\"broken\": "]).map { $0.contains(#""encoding":"text""#) }, true)
    }

    func testJSONWithANewlineIsTextSoThatAnSSELineStaysOneLine() throws {
        let encoded = MessageJSON.write([Array("t".utf8), Array("{\n\"a\": 1\n}".utf8)])
        XCTAssertFalse(encoded.contains(0x0A))
        XCTAssertEqual(try JSONDecoder().decode(MessageJSON.self, from: Data(encoded)).encoding, .text)
    }

    func testBinaryFramesAreBase64AndNotReadableText() {
        let frames: [[UInt8]] = [[0xC3, 0x28], Array("x".utf8), [0xFF]]
        XCTAssertNil(MessageJSON.readableText(frames))
        XCTAssertEqual(
            String(decoding: MessageJSON.write(frames, seq: 3), as: UTF8.self),
            #"{"type":"message","topic":"\#u{FFFD}(","topic_base64":"wyg=","encoding":"base64","payload":["eA==","/w=="],"seq":3}"#
        )
    }

    /// The direct writer and the Codable model are two writers of one shape: whatever the
    /// direct writer produces decodes to exactly the value the model builds from the same frames.
    func testTheDirectWriterAndTheModelAgree() throws {
        let corpus: [[[UInt8]]] = [
            [Array("w.paris".utf8), Array(#"{"c": 12, "list": [1, 2.5, "x", null, true], "o": {}}"#.utf8)],
            [Array("n".utf8), Array("-0.125e2".utf8)],
            [Array("s".utf8), Array(#""quoted \u00e9""#.utf8)],
            [Array("t".utf8), Array("plain text\twith\u{01}controls".utf8)],
            [Array("f".utf8), Array("a".utf8), Array("{}".utf8), []],
            [Array("e".utf8)],
            [Array("bin".utf8), [0xFF, 0x00], []],
            [[0xC3, 0x28], Array("x".utf8)],
            [Array("j".utf8), Array("{\n}".utf8)],
        ]
        for frames in corpus {
            for seq in [nil, UInt64(42)] {
                let written = MessageJSON.write(frames, seq: seq)
                let decoded = try JSONDecoder().decode(MessageJSON.self, from: Data(written))
                XCTAssertEqual(
                    decoded, MessageJSON(frames: frames, style: .readable, seq: seq),
                    String(decoding: written, as: UTF8.self))
                if decoded.encoding != .json {
                    XCTAssertEqual(decoded.messageFrames, frames, "exact unless a JSON payload is embedded")
                }
            }
        }
    }

    func testTheExactStyleRoundTripsAnyBytesThroughCodable() throws {
        let frames: [[UInt8]] = [[0xFF, 0x00, 0x41], [1, 2], Array(#"{"a":1}"#.utf8)]
        let entry = MessageJSON(frames: frames, style: .exact, seq: 7, storedMilliseconds: 9)
        let decoded = try JSONDecoder().decode(MessageJSON.self, from: JSONEncoder().encode(entry))
        XCTAssertEqual(decoded, entry)
        XCTAssertEqual(decoded.messageFrames, frames)
        XCTAssertEqual(decoded.encoding, .base64, "exact: base64 even for a JSON payload")
        XCTAssertEqual(decoded.sequence, 7)
        XCTAssertEqual(decoded.storedMilliseconds, 9)
    }

    func testInvalidBase64IsRefusedNotGuessed() throws {
        let bad = try JSONDecoder().decode(
            MessageJSON.self,
            from: Data(#"{"type":"message","topic":"x","topic_base64":"!!","encoding":"base64","payload":[]}"#.utf8))
        XCTAssertNil(bad.messageFrames)
        XCTAssertThrowsError(
            try JSONDecoder().decode(
                MessageJSON.self, from: Data(#"{"type":"message","topic":"x","encoding":"text","payload":[1]}"#.utf8)),
            "a payload that does not match its encoding is an error")
    }
}
