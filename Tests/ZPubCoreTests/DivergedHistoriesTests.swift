import XCTest
import ZPubCore

final class DivergedHistoriesTests: XCTestCase {
    private let file = "history.sqlite3"

    private func setAside(at seconds: UInt64) -> [String] {
        ["", "-wal", "-shm"].map { DivergedHistories.name(of: file + $0, setAsideAt: seconds) }
    }

    func testAllButTheNewestSetAsideHistoriesAreSurplusWithTheirLogFiles() {
        let times: [UInt64] = [1_700_000_100, 1_700_000_005, 1_700_000_300, 1_700_000_200, 999]
        let names = times.flatMap(setAside) + [file, "\(file)-wal", "lastvalues", "diverged-x-\(file)"]
        let surplus = DivergedHistories.surplus(among: names.shuffled(), historyFileName: file, keep: 3)
        XCTAssertEqual(Set(surplus), Set(setAside(at: 1_700_000_005) + setAside(at: 999)))
    }

    func testNothingIsSurplusUpToTheLimit() {
        let names = [1, 2, 3].flatMap { setAside(at: UInt64($0)) }
        XCTAssertEqual(DivergedHistories.surplus(among: names, historyFileName: file, keep: 3), [])
        XCTAssertEqual(DivergedHistories.surplus(among: [], historyFileName: file), [])
    }

    /// The copy just made is kept even when the clock was set back since the others.
    func testTheOneJustSetAsideIsNeverSurplus() {
        let names = [500, 400, 300, 100].flatMap { setAside(at: UInt64($0)) }
        let surplus = DivergedHistories.surplus(among: names, historyFileName: file, keep: 3, sparing: 100)
        XCTAssertEqual(Set(surplus), Set(setAside(at: 300)))
    }

    func testOtherFilesAreNeverSurplus() {
        let names = [
            "diverged-1-other.sqlite3", "diverged-2-\(file).bak", "diverged--\(file)", "kept-3-\(file)", file,
        ]
        XCTAssertEqual(DivergedHistories.surplus(among: names, historyFileName: file, keep: 0), [])
    }
}
