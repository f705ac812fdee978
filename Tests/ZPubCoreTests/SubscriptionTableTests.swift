import XCTest

@testable import ZPubCore

final class SubscriptionTableTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testCountsSubscriptionsPerPrefix() {
        var table = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 100)
        XCTAssertEqual(table.subscribe(bytes("a")), .accepted(isNewPrefix: true))
        XCTAssertEqual(table.subscribe(bytes("a")), .accepted(isNewPrefix: false))
        XCTAssertEqual(table.subscribe(bytes("b")), .accepted(isNewPrefix: true))
        XCTAssertEqual(table.count(of: bytes("a")), 2)
        XCTAssertEqual(table.totalSubscriptions, 3)
        XCTAssertEqual(table.prefixCount, 2)
        XCTAssertEqual(table.unsubscribe(bytes("a")), .removed(wasLast: false))
        XCTAssertEqual(table.unsubscribe(bytes("a")), .removed(wasLast: true))
        XCTAssertEqual(table.unsubscribe(bytes("a")), .unknown)
        XCTAssertEqual(table.totalSubscriptions, 1)
        XCTAssertEqual(table.entries().map(\.prefix), [bytes("b")])
    }

    func testMatchesByPrefix() {
        var table = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 100)
        XCTAssertFalse(table.matches(bytes("weather.paris")))
        _ = table.subscribe(bytes("weather."))
        XCTAssertTrue(table.matches(bytes("weather.paris")))
        XCTAssertTrue(table.matches(bytes("weather.")))
        XCTAssertFalse(table.matches(bytes("weather")))
        XCTAssertFalse(table.matches(bytes("sport.x")))
        _ = table.subscribe([])
        XCTAssertTrue(table.matches(bytes("sport.x")), "the empty prefix matches everything")
        _ = table.unsubscribe([])
        XCTAssertFalse(table.matches(bytes("sport.x")))
    }

    func testRefusesTooLongAndTableFull() {
        var table = SubscriptionTable(maxPrefixes: 2, maxPrefixLength: 4)
        XCTAssertEqual(table.subscribe(bytes("12345")), .refusedTooLong)
        XCTAssertEqual(table.subscribe(bytes("a")), .accepted(isNewPrefix: true))
        XCTAssertEqual(table.subscribe(bytes("b")), .accepted(isNewPrefix: true))
        XCTAssertEqual(table.subscribe(bytes("c")), .refusedTableFull)
        XCTAssertEqual(table.subscribe(bytes("a")), .accepted(isNewPrefix: false), "known prefixes are still counted")
        XCTAssertEqual(table.refusedTooLong, 1)
        XCTAssertEqual(table.refusedTableFull, 1)
        XCTAssertEqual(table.prefixCount, 2)
        XCTAssertFalse(table.matches(bytes("c1")))
    }

    func testGenerationChangesOnlyWhenThePrefixSetChanges() {
        var table = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 100)
        let start = table.generation
        _ = table.subscribe(bytes("a"))
        let afterNew = table.generation
        XCTAssertNotEqual(start, afterNew)
        _ = table.subscribe(bytes("a"))
        XCTAssertEqual(table.generation, afterNew)
        _ = table.unsubscribe(bytes("a"))
        XCTAssertEqual(table.generation, afterNew)
        _ = table.unsubscribe(bytes("a"))
        XCTAssertNotEqual(table.generation, afterNew)
    }

    func testEntriesFilteredByPrefixAndSorted() {
        var table = SubscriptionTable(maxPrefixes: 10, maxPrefixLength: 100)
        for prefix in ["b.2", "a.1", "b.1", "c"] { _ = table.subscribe(bytes(prefix)) }
        XCTAssertEqual(table.entries(withPrefix: bytes("b.")).map(\.prefix), [bytes("b.1"), bytes("b.2")])
        XCTAssertEqual(table.entries().count, 4)
    }
}
