/// Which of a pair peer's reports of its state to take. The peer reports on two connections (its
/// heartbeats on one, its answers to this broker's heartbeats on the other), so they can be
/// read out of order; an older report taken after a newer one would undo it (a peer that has
/// just gone active read as still passive, say). Each report carries the peer's run (a random
/// id per start) and a number counting up within the run.
public struct PeerReportOrder: Sendable {
    /// The run and number of the last report taken; nil before the first.
    public private(set) var last: (run: UInt64, number: UInt64)?

    public init() {}

    /// Whether the report of `run` and `number` is to be taken: newer than the last one taken
    /// from the same run, or the first of a new run (the peer restarted, and counts from 1
    /// again). Takes note of it if so. A report without them, from a zpubd older than
    /// 2026-12-02, is always taken.
    public mutating func take(run: UInt64?, number: UInt64?) -> Bool {
        guard let run, let number else { return true }
        if let last, last.run == run, number <= last.number { return false }
        last = (run, number)
        return true
    }

    /// `take(run:number:)` for a report's frames: state, sequence, run, number (the last two
    /// as decimal text, when present).
    public mutating func take(reportFields fields: ArraySlice<[UInt8]>) -> Bool {
        guard fields.count >= 4 else { return true }
        let decimal = { (frame: [UInt8]) in UInt64(String(decoding: frame, as: UTF8.self)) }
        let run = decimal(fields[fields.startIndex + 2])
        let number = decimal(fields[fields.startIndex + 3])
        guard let run, let number else { return true }
        return take(run: run, number: number)
    }
}
