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
