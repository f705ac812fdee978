import Logging
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// Sets up swift-log for the daemon: structured records to the journal when stderr is the
/// journal (under systemd), plain timestamped lines on stderr otherwise.
enum DaemonLogging {
    static func bootstrap() -> Logger {
        let toJournal = JournalLogHandler.stderrIsJournal
        LoggingSystem.bootstrap { label in
            toJournal
                ? JournalLogHandler(label: label) as any LogHandler
                : StderrLogHandler(label: label, withTimestamp: true)
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
