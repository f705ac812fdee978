import ZPubCore

/// Tells whether a message the gateway's link reads belongs to a broker's held backlog
/// (RESUME's, a stop's drain), which comes as fast as the link reads it and may fill a
/// client's queue as a resume's catch-up does (`ClientOutbox.resumeFactor`).
///
/// The broker's catch-up ends once it has sent its last message, but that message and up to a
/// queue's worth before it may still wait in the link's SUB: the backlog lasts until the link
/// finds its SUB empty after the end. Before, it lasted a second after the end: on a loaded
/// machine the link read the rest later, as live messages, and a client that had not read yet
/// was dropped as too slow with 1,042 of 3,000 (HTTPGatewayTests).
struct BacklogWatch {
    /// The end of the last catch-up whose messages the link has read to the end (0: none).
    private var endReadThrough: UInt64 = 0
    /// The end known as the link began its current read: a queue found empty after it holds
    /// nothing sent before it.
    private var endAtReadStart: UInt64 = 0

    /// How long after its end a catch-up may still count, if the link never finds its SUB
    /// empty (it is behind for good): a client that reads slower than messages come is then
    /// dropped with `client_queue` again, not ten times that.
    static let patienceNanoseconds: UInt64 = 30_000_000_000

    /// The link begins to read its SUB.
    mutating func readStarts(_ state: BacklogCatchUpState) {
        endAtReadStart = state.lastEndNanoseconds
    }

    /// The link found its SUB empty: it has read whatever the broker sent before the read
    /// began.
    mutating func foundEmpty() {
        endReadThrough = endAtReadStart
    }

    /// Whether a message read now is part of a backlog.
    func isBacklog(_ state: BacklogCatchUpState, nowNanoseconds: () -> UInt64) -> Bool {
        if state.isRunning { return true }
        let end = state.lastEndNanoseconds
        return end != 0 && end != endReadThrough && nowNanoseconds() &- end < Self.patienceNanoseconds
    }
}
