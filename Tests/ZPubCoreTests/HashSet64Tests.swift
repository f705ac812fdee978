import XCTest

@testable import ZPubCore

final class HashSet64Tests: XCTestCase {
    func testAgreesWithSetUnderChurn() {
        var set = HashSet64()
        var reference = Set<Int>()
        var generator = SystemRandomNumberGenerator()
        // Few distinct low bits: long probe runs, so deletion's shifts are exercised.
        // Not 1 beside 0: 0 is kept as 1. (From 0, the first member was 1 one run in 64, and
        // the test failed: seen in a whole-suite run on 2026-12-02.)
        let members = (1...2_000).map { $0 << 20 | Int.random(in: 0..<64, using: &generator) } + [0, -1]
        for _ in 0..<50_000 {
            let member = members.randomElement(using: &generator)!
            if Bool.random(using: &generator) {
                XCTAssertEqual(set.insert(member), reference.insert(member).inserted)
            } else {
                XCTAssertEqual(set.remove(member), reference.remove(member) != nil)
            }
        }
        XCTAssertEqual(set.count, reference.count)
        for member in members { XCTAssertEqual(set.contains(member), reference.contains(member), "\(member)") }
    }

    func testStartsEmptyAndTakesZero() {
        var set = HashSet64()
        XCTAssertTrue(set.isEmpty)
        XCTAssertFalse(set.contains(0))
        XCTAssertFalse(set.remove(5))
        XCTAssertTrue(set.insert(0))
        XCTAssertTrue(set.contains(0))
        XCTAssertTrue(set.remove(0))
        XCTAssertTrue(set.isEmpty)
    }
}
