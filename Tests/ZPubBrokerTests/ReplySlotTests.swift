import Synchronization
import XCTest

@testable import ZPubBroker

/// The one-shot answer between the loop and the control threads.
final class ReplySlotTests: XCTestCase {
    func testAValueWakesTheWaiterAndStays() {
        let slot = ReplySlot<Int>()
        slot.fulfill(7)
        XCTAssertEqual(slot.wait(milliseconds: 5_000), 7)
        XCTAssertEqual(slot.value, 7)
    }

    /// A slot the stopping loop abandons wakes its waiter at once with nothing, and tells a
    /// polling side (the control server) to look: a control thread waited its whole 5 s
    /// before, and held a stop of zpubd with SSE clients that long.
    func testAbandonWakesTheWaiterAtOnceWithoutAValue() {
        let told = Atomic<Int>(0)
        let slot = ReplySlot<Int>(onFulfil: { told.add(1, ordering: .relaxed) })
        let start = ContinuousClock.now
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { slot.abandon() }
        XCTAssertNil(slot.wait(milliseconds: 30_000))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(20), "woken by the abandon, not the time")
        XCTAssertNil(slot.value)
        XCTAssertEqual(told.load(ordering: .relaxed), 1)
    }
}
