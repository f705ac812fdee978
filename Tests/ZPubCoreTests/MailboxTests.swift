import XCTest
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

final class MailboxTests: XCTestCase {
    /// Commands come out in order, and the first one wakes the owner's poll.
    func testTakeReturnsWhatWasPostedInOrderAndTheFirstPostWakes() {
        let mailbox = Mailbox<Int>()
        XCTAssertFalse(isReadable(mailbox.fileDescriptor))
        XCTAssertTrue(mailbox.post(1))
        XCTAssertTrue(isReadable(mailbox.fileDescriptor))
        XCTAssertTrue(mailbox.post(2))
        XCTAssertEqual(mailbox.take(), [1, 2])
        XCTAssertFalse(isReadable(mailbox.fileDescriptor), "take clears the wake-up")
        XCTAssertEqual(mailbox.take(), [])
    }

    /// The owner's last take returns what waits, and nothing is accepted after it: a poster
    /// learns that nobody will take its command (the gateway's POST /publish answers its
    /// requester then, rather than leaving its promise unanswered).
    func testCloseReturnsWhatWaitsAndRefusesLaterPosts() {
        let mailbox = Mailbox<Int>()
        mailbox.post(1)
        mailbox.post(2)
        XCTAssertEqual(mailbox.close(), [1, 2])
        XCTAssertFalse(mailbox.post(3))
        XCTAssertEqual(mailbox.take(), [])
        XCTAssertEqual(mailbox.close(), [])
    }

    private func isReadable(_ descriptor: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1
    }
}
