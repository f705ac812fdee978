import Logging
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// Sets up swift-log for the daemon: plain lines on stderr, without a timestamp when stderr is
/// the journal (which stamps each line itself).
enum DaemonLogging {
    static func bootstrap() -> Logger {
        let toJournal = getenv("JOURNAL_STREAM") != nil
        LoggingSystem.bootstrap { label in
            StderrLogHandler(label: label, withTimestamp: !toJournal)
        }
        return Logger(label: "zpubd")
    }

    static func endpointMetadata(_ endpoints: [String: [String]]) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        for (role, list) in endpoints where !list.isEmpty {
            metadata[role] = .string(list.joined(separator: ","))
        }
        return metadata
    }
}
