import XCTest

@testable import ZPubCore

final class TopicKeyTests: XCTestCase {
    private func key(_ bytes: [UInt8]) -> TopicKey { bytes.withUnsafeBytes { TopicKey($0) } }

    /// Up to 16 bytes a key is the whole topic: the same bytes give the same key, and a change
    /// to any one byte, at any length, gives another. (The forwarding loop takes equal exact keys
    /// for the same topic without looking at the table.)
    func testAKeyOfUpTo16BytesHoldsEveryByte() {
        for length in 0...TopicKey.exactLength {
            let topic = (0..<length).map { UInt8(truncatingIfNeeded: 0x41 + $0) }
            XCTAssertEqual(key(topic), key(Array(topic)), "length \(length)")
            XCTAssertTrue(key(topic).isExact, "length \(length)")
            for position in 0..<length {
                for value: UInt8 in [0, 1, 0x80, 0xff] where value != topic[position] {
                    var changed = topic
                    changed[position] = value
                    XCTAssertNotEqual(key(topic), key(changed), "length \(length), byte \(position) = \(value)")
                }
            }
        }
    }

    /// Topics of zero bytes that differ only in length have different keys, and none is
    /// `TopicKey.none`, the key of "no previous topic".
    func testTheLengthIsPartOfTheKey() {
        let keys = (0...40).map { key([UInt8](repeating: 0, count: $0)) }
        XCTAssertEqual(Set(keys.map(\.count)).count, keys.count)
        for (first, second) in zip(keys, keys.dropFirst()) { XCTAssertNotEqual(first, second) }
        XCTAssertFalse(keys.contains(.none))
    }

    /// Beyond 16 bytes a key is the length and the first and last 8 bytes: not exact, so the
    /// table's key decides.
    func testALongerKeyIsOnlyACandidate() {
        let left = key(Array("sensors.A.temperature".utf8))
        let right = key(Array("sensors.B.temperature".utf8))
        XCTAssertFalse(left.isExact)
        XCTAssertEqual(left, right)
    }
}
