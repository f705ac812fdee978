/// The keys zpubd reads only at start (docs/control-protocol.md, CONFIG): libzmq's I/O threads,
/// the sockets' high-water marks, where and how history is kept, the pair, and where the HTTP
/// gateway listens. A reload cannot
/// change them; it keeps the values fixed at start, says so for each key its file changes, and
/// hands on a configuration that holds what is in force (what CONFIG then shows).
///
/// Compared with the start, not with the last reload: a file changed and then restored is back
/// to what is in force, and nothing is said about it.
public struct StartOnlySettings: Equatable, Sendable {
    public let ioThreads: Int
    public let sendHighWaterMark: Int
    public let receiveHighWaterMark: Int
    public let startHoldMilliseconds: Int
    public let stateDirectory: String?
    public let historyQueueBytes: Int
    public let historySequenceReserve: Int
    public let pair: PairSettings
    public let httpEnabled: Bool
    public let httpListen: String
    /// Whether a pair member keeps history (and so mirrors its peer's): its link is set up
    /// with it at start, though the prefixes themselves change live.
    public let pairKeepsHistory: Bool
    /// Whether the history store was opened (and its writer started): at start only, so that
    /// [history] prefixes a reload names to a broker started without one keep nothing.
    public let historyStoreOpen: Bool

    /// The values of `configuration`, the one zpubd started with.
    public init(_ configuration: BrokerConfiguration) {
        ioThreads = configuration.ioThreads
        sendHighWaterMark = configuration.sendHighWaterMark
        receiveHighWaterMark = configuration.receiveHighWaterMark
        startHoldMilliseconds = configuration.startHoldMilliseconds
        stateDirectory = configuration.stateDirectory
        historyQueueBytes = configuration.historyQueueBytes
        historySequenceReserve = configuration.historySequenceReserve
        pair = configuration.pair
        httpEnabled = configuration.http.enabled
        httpListen = configuration.http.listen
        pairKeepsHistory = !configuration.historyPrefixes.isEmpty
        historyStoreOpen = configuration.opensHistoryStore
    }

    /// `reloaded` with the start-only keys set back to the values in force, and a warning for
    /// each key whose value in `reloaded` differs from it.
    public func keep(in reloaded: BrokerConfiguration) -> (configuration: BrokerConfiguration, warnings: [String]) {
        var kept = reloaded
        var warnings: [String] = []
        /// A number read at start: the value in force is kept, and `what` (of the value in
        /// force, then the file's) says so when the file's differs.
        func keepNumber(_ key: WritableKeyPath<BrokerConfiguration, Int>, _ inForce: Int, _ what: String) {
            guard reloaded[keyPath: key] != inForce else { return }
            warnings.append("\(what) until a restart, not \(reloaded[keyPath: key])")
            kept[keyPath: key] = inForce
        }
        keepNumber(\.ioThreads, ioThreads, "io_threads is read at start: libzmq keeps \(ioThreads) I/O thread(s)")
        // Set once, before the first bind (`SocketSetup.applyOptions`: libzmq 4.3.4 hands a new
        // high-water mark to connections that are closing too, and died of it).
        keepNumber(
            \.sendHighWaterMark, sendHighWaterMark,
            "send_hwm is read at start: the XPUB keeps queues of \(sendHighWaterMark) messages per subscriber")
        keepNumber(
            \.startHoldMilliseconds, startHoldMilliseconds,
            "start_hold_ms is read at start: \(startHoldMilliseconds) ms is in force")
        keepNumber(
            \.receiveHighWaterMark, receiveHighWaterMark,
            "receive_hwm is read at start: PULL and XSUB keep queues of \(receiveHighWaterMark) messages per producer")
        if reloaded.stateDirectory != stateDirectory {
            let place = stateDirectory.map { "in \($0)" } ?? "in memory"
            warnings.append("[history] directory is read at start: history stays \(place) until a restart")
            kept.stateDirectory = stateDirectory
        }
        keepNumber(
            \.historyQueueBytes, historyQueueBytes,
            "[history] queue_bytes is read at start: the history writer's queue keeps \(historyQueueBytes) bytes")
        keepNumber(
            \.historySequenceReserve, historySequenceReserve,
            "[history] sequence_reserve is read at start: the store keeps reserving \(historySequenceReserve)")
        if reloaded.pair != pair {
            // The pair's link, role and endpoints are set up at start (docs/topologies.md); so
            // are the subscribers' heartbeats it sets (`SocketSetup.applyOptions`). The keys
            // are named: a reload that tells each change once would take a second, different
            // change for the first one told, and say nothing.
            let changed = Self.changedKeys(from: pair, to: reloaded.pair).joined(separator: ", ")
            warnings.append(
                "[ha] is read at start (\(changed) changed): this broker keeps its role (\(pair.role?.rawValue ?? "none")) and its peer until a restart"
            )
            kept.pair = pair
        }
        if !historyStoreOpen && !reloaded.historyPrefixes.isEmpty {
            // Kept empty, so that CONFIG, STATS and the gateway show what is in force; before,
            // only the log said so, and `zpub reload` exited 0 as if the file were in force.
            warnings.append(
                "[history] prefixes are set, but zpubd started without history (no store is open): nothing is kept until a restart (systemctl restart zpubd)"
            )
            kept.historyPrefixes = []
        }
        if !historyStoreOpen, let stateDirectory, !reloaded.lastValuePrefixes.isEmpty {
            // The cache takes them at once; persisting them needs the store, which is opened at
            // start only. `zpub reload` said "reloaded" and the values were gone after the next
            // restart, though the start's own warning had promised they would be kept (an audit).
            warnings.append(
                "[last_value] prefixes are set, but zpubd started without a store in \(stateDirectory) (it had no [last_value] or [history] prefixes): their values are cached from now on, and kept across restarts only after a restart (systemctl restart zpubd)"
            )
        }
        if pair.isEnabled && kept.historyPrefixes.isEmpty == pairKeepsHistory {
            warnings.append(
                pairKeepsHistory
                    ? "[history] prefixes are now empty, but whether this pair member keeps history and mirrors its peer's is read at start: it goes on asking its peer for history until a restart"
                    : "[history] prefixes are now set (and applied to this broker's own messages), but whether this pair member mirrors its peer's history is read at start: it mirrors nothing until a restart"
            )
        }
        if reloaded.http.enabled != httpEnabled {
            warnings.append(
                httpEnabled
                    ? "[http] enabled = false: the gateway keeps running until a restart, as it is (the file's other [http] values, tokens included, are not applied either)"
                    : "[http] enabled = true: the gateway starts at the next restart")
            kept.http.enabled = httpEnabled
        }
        // A gateway that did not start listens nowhere: the file's address is the next start's.
        if httpEnabled && reloaded.http.listen != httpListen {
            warnings.append(
                "[http] listen changed from \(httpListen) to \(reloaded.http.listen): the gateway keeps listening on \(httpListen) until a restart"
            )
            kept.http.listen = httpListen
        }
        return (kept, warnings)
    }

    /// The `[ha]` keys whose values differ, with the new values (the file's spelling).
    static func changedKeys(from old: PairSettings, to new: PairSettings) -> [String] {
        func shown(_ value: String?) -> String { value.map { "\"\($0)\"" } ?? "unset" }
        var keys: [String] = []
        if old.role != new.role { keys.append("role = \(shown(new.role?.rawValue))") }
        if old.bind != new.bind { keys.append("bind = \(shown(new.bind))") }
        if old.peer != new.peer { keys.append("peer = \(shown(new.peer))") }
        if old.failoverMilliseconds != new.failoverMilliseconds {
            keys.append("failover_ms = \(new.failoverMilliseconds)")
        }
        if old.peerPublicKeyFile != new.peerPublicKeyFile {
            keys.append("peer_public_key_file = \(shown(new.peerPublicKeyFile))")
        }
        return keys
    }
}
