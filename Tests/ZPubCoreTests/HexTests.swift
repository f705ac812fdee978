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

    func testFixedWidthNumbersRoundTrip() {
        for value: UInt64 in [0, 1, 0xabc, 0x7fff_ffff_ffff_ffff, .max] {
            let digits = Hex.fixedWidth(value)
            XCTAssertEqual(digits.count, 16)
            XCTAssertEqual(Hex.number(digits), value)
        }
        XCTAssertEqual(String(decoding: Hex.fixedWidth(0xabc), as: UTF8.self), "0000000000000abc")
        XCTAssertEqual(Hex.number(Array("00000000000000FF".utf8)), 0xff)
        XCTAssertNil(Hex.number(Array("0000000000000x00".utf8)), "not digits")
        XCTAssertNil(Hex.number(Array("1\(String(repeating: "0", count: 16))".utf8)), "17 digits overflow")
    }
}
