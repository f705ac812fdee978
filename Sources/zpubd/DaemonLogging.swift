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

    /// One field per role with what is bound now, and `<role>_after_reply` where a change is
    /// held back (the control socket's endpoints, until the RELOAD that changed them is
    /// answered), so that a reload's log line does not read as if the old endpoints stayed.
    static func endpointMetadata(_ endpoints: [String: [String]], held: [String: [String]] = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        for (role, list) in endpoints where !list.isEmpty {
            metadata[role] = .string(list.joined(separator: ","))
        }
        for (role, list) in held {
            metadata["\(role)_after_reply"] = .string(list.joined(separator: ","))
        }
        return metadata
    }
}
