/// The histories a pair member set aside when it was demoted (`diverged-<time>-<file>` in its
/// state directory, kept for the operator): each is a whole history, so a pair whose link
/// flaps would leave one at every demotion until the disk is full. The newest few are kept.
public enum DivergedHistories {
    /// How many set-aside histories (each with its -wal and -shm files) are kept.
    public static let kept = 3

    /// The name a history file set aside at `seconds` (Unix time) gets.
    public static func name(of file: String, setAsideAt seconds: UInt64) -> String {
        "diverged-\(seconds)-\(file)"
    }

    /// Of the file names in a state directory, those of set-aside histories beyond the `keep`
    /// newest, to remove. Names that are not set-aside copies of `historyFileName` are left,
    /// and so is the one set aside at `sparing`, whatever the clock did since the others (set
    /// back, it would make the copy just made look oldest).
    public static func surplus(
        among names: [String], historyFileName: String, keep: Int = kept, sparing: UInt64? = nil
    ) -> [String] {
        var byTime: [UInt64: [String]] = [:]
        for name in names {
            guard let seconds = setAsideTime(name, historyFileName: historyFileName) else { continue }
            byTime[seconds, default: []].append(name)
        }
        let others = byTime.keys.filter { $0 != sparing }.sorted(by: >)
        let spared = sparing.map { byTime[$0] != nil } ?? false
        let room = spared ? max(keep - 1, 0) : keep
        return others.dropFirst(room).flatMap { byTime[$0]!.sorted() }
    }

    private static func setAsideTime(_ name: String, historyFileName: String) -> UInt64? {
        guard name.hasPrefix("diverged-") else { return nil }
        let rest = name.dropFirst("diverged-".count)
        guard let dash = rest.firstIndex(of: "-"), let seconds = UInt64(rest[..<dash]) else { return nil }
        let file = rest[rest.index(after: dash)...]
        guard ["", "-wal", "-shm"].contains(where: { file == historyFileName + $0 }) else { return nil }
        return seconds
    }
}
