import CSystemd
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Logs to the systemd journal with `sd_journal_sendv`: the right `PRIORITY` per level (so
/// `journalctl -p warning` works) and the record's metadata as fields (`ENDPOINT=...`,
/// `PEER=...`, `ERROR=...`), so `journalctl ENDPOINT=tcp://...` matches.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) { self.label = label }

    public var logLevel: Logger.Level {
        get { LogLevelSwitch.level }
        set { LogLevelSwitch.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// True when stderr is connected to the journal (systemd sets `JOURNAL_STREAM` to the
    /// device and inode of that stream; a redirected stderr no longer matches).
    public static var stderrIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(2, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The journal fields for a record, in order: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, then
    /// one per metadata key (upper-cased, other characters mapped to `_`).
    public static func fields(
        message: String, level: Logger.Level, label: String, metadata: Logger.Metadata
    ) -> [String] {
        var fields = [
            "MESSAGE=\(message)", "PRIORITY=\(priority(of: level))", "SYSLOG_IDENTIFIER=\(label)",
        ]
        for key in metadata.keys.sorted() {
            fields.append("\(fieldName(key))=\(metadata[key]!)")
        }
        return fields
    }

    /// Journal field names are A-Z, 0-9 and _, not starting with _ or a digit.
    static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" })
        while name.first == "_" || name.first?.isNumber == true { name.removeFirst() }
        return name.isEmpty ? "FIELD" : name
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let fields = Self.fields(message: "\(event.message)", level: event.level, label: label, metadata: merged)
        // One buffer holding every field, and an iovec per field pointing into it.
        var buffer: [UInt8] = []
        var ranges: [(offset: Int, count: Int)] = []
        for field in fields {
            ranges.append((buffer.count, field.utf8.count))
            buffer.append(contentsOf: field.utf8)
        }
        buffer.withUnsafeMutableBytes { raw in
            var vectors = ranges.map { iovec(iov_base: raw.baseAddress! + $0.offset, iov_len: $0.count) }
            _ = sd_journal_sendv(&vectors, Int32(vectors.count))
        }
    }
}
