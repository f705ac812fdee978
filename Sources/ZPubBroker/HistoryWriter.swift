import Logging
import ZPubCore
import ZPubStore
import ZeroMQ

/// The hand-off from the forwarding loop to the history writer. Bounded, and it never blocks
/// the loop: when it is full, history drops the message (counted) and forwarding goes on.
final class HistoryQueue: Sendable {
    private struct Buffer: Sendable {
        var messages: [StoredMessage] = []
        /// The highest sequence the loop assigned, kept or dropped.
        var assignedThrough: UInt64 = 0
        var dropped: UInt64 = 0
    }

    let capacity: Int
    private let buffer = Locked(Buffer())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// From the forwarding loop: false when the queue is full (the message is not kept).
    func offer(_ message: StoredMessage) -> Bool {
        buffer.withLock { buffer in
            buffer.assignedThrough = message.sequence
            guard buffer.messages.count < capacity else {
                buffer.dropped &+= 1
                return false
            }
            buffer.messages.append(message)
            return true
        }
    }

    /// For the writer: everything waiting, and the highest sequence assigned so far.
    func takeAll() -> (messages: [StoredMessage], assignedThrough: UInt64) {
        buffer.withLock { buffer in
            defer { buffer.messages.removeAll(keepingCapacity: true) }
            return (buffer.messages, buffer.assignedThrough)
        }
    }

    var depth: (queued: Int, dropped: UInt64) {
        buffer.withLock { ($0.messages.count, $0.dropped) }
    }
}

/// What other threads ask the history writer.
enum HistoryCommand: Sendable {
    /// Stored messages for HISTORY (or a replay): answered after everything queued before it
    /// is written, so a reader sees every message the loop handed over until then.
    case query(HistoryQuery, ReplySlot<Result<HistoryReply, ControlError>>)
    /// A reloaded configuration: its bounds apply from now on.
    case reconfigure(BrokerConfiguration)
    case stop
}

/// What other threads may use of the history writer: the loop's queue, the mailbox for
/// queries, the stats for STATS.
final class HistoryHandle: Sendable {
    let queue: HistoryQueue
    let mailbox = Mailbox<HistoryCommand>()
    let stats: Locked<HistoryStats>
    /// Where the forwarding loop's sequences start.
    let firstNewSequence: UInt64

    init(queue: HistoryQueue, stats: HistoryStats, firstNewSequence: UInt64) {
        self.queue = queue
        self.stats = Locked(stats)
        self.firstNewSequence = firstNewSequence
    }

    /// Asks the writer for stored messages; waits at most `milliseconds`.
    func query(_ query: HistoryQuery, milliseconds: Int) -> Result<HistoryReply, ControlError> {
        let slot = ReplySlot<Result<HistoryReply, ControlError>>()
        mailbox.post(.query(query, slot))
        return slot.wait(milliseconds: milliseconds)
            ?? .failure(ControlError(.unavailable, "the history writer did not answer within \(milliseconds) ms"))
    }
}

/// The history writer's thread: owns the store (SQLite is used by this thread only), writes
/// what the loop hands over in batches, one transaction each (a SIGKILL loses at most the
/// batch in flight), syncs to disk every `sync_interval_ms`, applies the bounds, and answers
/// queries. It never touches a socket, so a slow or full disk costs forwarding nothing.
final class HistoryWriter {
    /// How long the writer sleeps when there is nothing to write: the batching interval.
    static let batchMilliseconds = 20

    let handle: HistoryHandle
    private var queue: HistoryQueue { handle.queue }
    private var mailbox: Mailbox<HistoryCommand> { handle.mailbox }
    private let store: HistoryStore
    private let syncIntervalNanoseconds: UInt64
    private let logger: Logger
    private var written: UInt64 = 0
    private var writeFailures: UInt64 = 0
    private var lastSyncMilliseconds: UInt64 = 0
    private var failureLog = LogRateLimit()

    /// Opens the store (throws `HistoryStoreError` at start, never later).
    init(configuration: BrokerConfiguration, logger: Logger) throws(HistoryStoreError) {
        store = try HistoryStore(
            directory: configuration.stateDirectory,
            bounds: HistoryStore.Bounds(
                maxMessages: configuration.historyMaxMessages, maxBytes: configuration.historyMaxBytes,
                maxAgeMilliseconds: UInt64(configuration.historyMaxAgeSeconds) * 1_000))
        handle = HistoryHandle(
            queue: HistoryQueue(capacity: configuration.historyQueue),
            stats: HistoryStats(
                prefixes: configuration.historyPrefixes, persistent: configuration.stateDirectory != nil,
                directory: configuration.stateDirectory),
            firstNewSequence: store.lastSequence + 1)
        syncIntervalNanoseconds = UInt64(configuration.historySyncIntervalMilliseconds) * 1_000_000
        self.logger = logger
        refreshStats()
        if let path = store.path {
            logger.notice(
                "history of \(configuration.historyPrefixes.joined(separator: ", ")) in \(path): \(store.messageCount) messages kept, sequences continue after \(store.lastSequence)"
            )
        } else {
            logger.notice(
                "history of \(configuration.historyPrefixes.joined(separator: ", ")) in memory only: it is lost at exit; give a state directory (--state-dir, [history] directory) to keep it"
            )
        }
    }

    func run() {
        var poller = Poller()
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        var lastSync = SystemClock.monotonicNanoseconds()
        var stopping = false
        while !stopping {
            _ = try? poller.poll(timeoutMilliseconds: Self.batchMilliseconds)
            let commands = poller.isReadable(mailboxIndex) ? mailbox.take() : []
            writeWaiting()
            let now = SystemClock.monotonicNanoseconds()
            if now &- lastSync >= syncIntervalNanoseconds {
                sync()
                lastSync = now
            }
            for command in commands {
                switch command {
                case .query(let query, let slot): slot.fulfill(answer(query))
                case .reconfigure(let configuration): apply(configuration)
                case .stop: stopping = true
                }
            }
            refreshStats()
        }
        writeWaiting()
        sync()
        refreshStats()
    }

    /// Applies a reloaded configuration's bounds (prefixes are the loop's business).
    private func apply(_ configuration: BrokerConfiguration) {
        store.bounds = HistoryStore.Bounds(
            maxMessages: configuration.historyMaxMessages, maxBytes: configuration.historyMaxBytes,
            maxAgeMilliseconds: UInt64(configuration.historyMaxAgeSeconds) * 1_000)
    }

    private func writeWaiting() {
        let (batch, assignedThrough) = queue.takeAll()
        guard !batch.isEmpty || assignedThrough > store.lastSequence else { return }
        do {
            try store.append(batch, assignedThrough: assignedThrough, nowMilliseconds: SystemClock.wallMilliseconds())
            written &+= UInt64(batch.count)
        } catch {
            writeFailures &+= UInt64(batch.count)
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.error(
                    "history could not store \(batch.count) messages: \(error); forwarding goes on\(heldBack > 0 ? " (\(heldBack) more failures since the last such message)" : "")"
                )
            }
        }
    }

    private func sync() {
        do {
            try store.checkpoint()
            if store.path != nil { lastSyncMilliseconds = SystemClock.wallMilliseconds() }
        } catch {
            if let heldBack = failureLog.admit(nowNanoseconds: SystemClock.monotonicNanoseconds()) {
                logger.error(
                    "history could not sync to disk: \(error)\(heldBack > 0 ? " (\(heldBack) more failures since the last such message)" : "")"
                )
            }
        }
    }

    private func answer(_ query: HistoryQuery) -> Result<HistoryReply, ControlError> {
        do {
            let messages: [StoredMessage]
            var gap: HistoryReply.Gap?
            switch query.position {
            case .since(let sequence):
                messages = try store.messages(
                    after: sequence, through: query.through ?? UInt64(Int64.max), prefix: query.prefix,
                    limit: HistoryReply.pageSize)
                gap = HistoryReply.gap(
                    since: sequence, firstSequence: store.firstSequence, lastSequence: store.lastSequence)
            case .last(let count):
                messages = try store.messages(
                    after: 0, prefix: query.prefix, limit: min(count, HistoryReply.pageSize), newest: true)
            }
            let more: Bool =
                if case .since = query.position { messages.count == HistoryReply.pageSize } else { false }
            return .success(
                HistoryReply(
                    firstSequence: store.firstSequence, lastSequence: store.lastSequence, through: query.through,
                    messages: messages.map {
                        SnapshotReply.Entry(
                            frames: $0.frames, sequence: $0.sequence, storedMilliseconds: $0.receivedMilliseconds)
                    }, more: more, gap: gap))
        } catch {
            return .failure(ControlError(.internalError, "history could not be read: \(error)"))
        }
    }

    private func refreshStats() {
        let (queued, dropped) = queue.depth
        let perPrefix = store.perPrefix.mapValues { HistoryStats.PrefixStats(messages: $0.messages, bytes: $0.bytes) }
        let diskBytes = store.diskBytes
        handle.stats.withLock { stats in
            stats.messages = store.messageCount
            stats.bytes = store.byteCount
            stats.firstSequence = store.firstSequence
            stats.lastSequence = store.lastSequence
            stats.perPrefix = perPrefix
            stats.written = written
            stats.queued = queued
            stats.dropped = dropped
            stats.writeFailures = writeFailures
            stats.evictions = store.evictions
            stats.diskBytes = diskBytes
            stats.lastSyncMilliseconds = lastSyncMilliseconds
        }
    }
}
