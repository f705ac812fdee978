import XCTest

@testable import ZPubCore

/// A pair peer's reports arrive on two connections; only newer ones are taken.
final class PeerReportOrderTests: XCTestCase {
    func testReportsOfOneRunAreTakenOnlyWhenNewer() {
        var order = PeerReportOrder()
        XCTAssertTrue(order.take(run: 7, number: 1), "the first report")
        XCTAssertTrue(order.take(run: 7, number: 3), "a newer one, even with a gap")
        XCTAssertFalse(order.take(run: 7, number: 2), "an older one read late")
        XCTAssertFalse(order.take(run: 7, number: 3), "the same one twice")
        XCTAssertTrue(order.take(run: 7, number: 4))
        XCTAssertEqual(order.last?.number, 4)
    }

    func testARestartedPeerIsHeardFromItsFirstReport() {
        var order = PeerReportOrder()
        XCTAssertTrue(order.take(run: 7, number: 900))
        XCTAssertTrue(order.take(run: 8, number: 1), "a new run counts from 1 again")
        XCTAssertFalse(order.take(run: 8, number: 1))
        XCTAssertTrue(order.take(run: 7, number: 901), "another run is another sequence of numbers")
    }

    func testReportsWithoutRunAndNumberAreAlwaysTaken() {
        var order = PeerReportOrder()
        XCTAssertTrue(order.take(run: 7, number: 5))
        let old: ArraySlice<[UInt8]> = [Array("active".utf8), Array("42".utf8)][...]
        XCTAssertTrue(order.take(reportFields: old), "a zpubd from before run and number")
        XCTAssertTrue(order.take(reportFields: old))
        XCTAssertEqual(order.last?.number, 5, "and they do not move the last number")
    }

    func testReportFieldsAreReadAsStateSequenceRunNumber() {
        var order = PeerReportOrder()
        let fields = { (number: String) -> ArraySlice<[UInt8]> in
            [Array("HB".utf8), Array("passive".utf8), Array("42".utf8), Array("99".utf8), Array(number.utf8)][1...]
        }
        XCTAssertTrue(order.take(reportFields: fields("10")))
        XCTAssertFalse(order.take(reportFields: fields("9")), "fields counted from the slice's start")
        XCTAssertEqual(order.last?.run, 99)
        XCTAssertTrue(order.take(reportFields: fields("not a number")), "unreadable: taken, as an old peer's")
        XCTAssertEqual(order.last?.number, 10)
    }
}
