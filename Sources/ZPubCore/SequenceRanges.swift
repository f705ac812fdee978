/// Ranges of history sequence numbers.
public enum SequenceRanges {
    /// The parts of `range` that none of `others` covers, in order. `others` need not be sorted
    /// or disjoint.
    public static func parts(of range: ClosedRange<UInt64>, outside others: [ClosedRange<UInt64>])
        -> [ClosedRange<UInt64>]
    {
        var parts: [ClosedRange<UInt64>] = []
        var next = range.lowerBound
        for other in others.sorted(by: { $0.lowerBound < $1.lowerBound })
        where other.upperBound >= next && other.lowerBound <= range.upperBound {
            if other.lowerBound > next { parts.append(next...(other.lowerBound - 1)) }
            guard other.upperBound < range.upperBound else { return parts }
            next = other.upperBound + 1
        }
        parts.append(next...range.upperBound)
        return parts
    }
}
