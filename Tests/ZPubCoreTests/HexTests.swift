import Foundation
import XCTest

@testable import ZPubCore

final class HexTests: XCTestCase {
    func testRoundTripsEveryByte() {
        let bytes = (0...255).map { UInt8($0) }
        XCTAssertEqual(Hex.decode(Hex.encode(bytes)), bytes)
        XCTAssertEqual(Hex.encode([0x00, 0xab, 0xff]), "00abff")
    }

    func testAcceptsUpperCase() {
        XCTAssertEqual(Hex.decode("ABcd"), [0xab, 0xcd])
    }

    func testRefusesWhatIsNotHex() {
        XCTAssertNil(Hex.decode("abc"), "odd length")
        XCTAssertNil(Hex.decode("zz"), "not digits")
        XCTAssertNil(Hex.decode("0g"))
        XCTAssertNil(Hex.decode("é0"))
        XCTAssertEqual(Hex.decode(""), [])
    }
}

final class SnapshotEntryTests: XCTestCase {
    private func entry(_ json: String) throws -> SnapshotReply.Entry {
        try JSONDecoder().decode(SnapshotReply.Entry.self, from: Data(json.utf8))
    }

    func testATopicThatIsNotUTF8ComesBackFromItsHex() throws {
        let topic: [UInt8] = [0xff, 0x00, 0x41]
        let original = SnapshotReply.Entry(
            LastValueCache.Entry(frames: [topic, [1, 2]], bytes: 5, sequence: 3, storedMilliseconds: 4))
        let decoded = try JSONDecoder().decode(SnapshotReply.Entry.self, from: JSONEncoder().encode(original))
        XCTAssertEqual(decoded.messageFrames, [topic, [1, 2]])
    }

    func testInvalidHexIsRefusedNotGuessed() throws {
        let bad = try entry(#"{"topic":"x","topic_hex":"zz","frames":[],"sequence":1,"stored_ms":0}"#)
        XCTAssertNil(bad.messageFrames)
    }
}
