import Logging
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// Log records handed to a thread of their own, for a thread that must never wait for its log:
/// the forwarding loop. Its handlers write to the journal's socket or to stderr, and either can
/// block: journald stalled or restarting, stderr a pipe whose reader stopped reading. The loop
/// would then stop forwarding for everyone until the reader came back.
///
/// At most `capacity` records wait, besides the batch the writer has in hand (up to as many
/// again); beyond that a record is dropped and counted, and the writer says how many were
/// dropped (at warning, whatever the log level) once it gets to write again. Records keep their
/// order; they are stamped when written (a line on stderr) or received (the journal), so after
/// a stall the loop's lines carry the time the reader came back, and the drop warning says so.
public final class LogRecordQueue: @unchecked Sendable {
    // @unchecked: every field is read and written under `mutex`.
    private struct Record {
        let handler: any LogHandler
        let event: LogEvent
    }

    public let capacity: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [Record] = []
    private var dropped = 0
    private var totalDropped = 0
    private var writing = false
    private var finished = false
    private var writer: JoinableThread?

    public init(capacity: Int = 1_000) {
        self.capacity = capacity
        pthread_mutex_init(mutex, nil)
        // Timed waits on the monotonic clock: a step of the wall clock during a stop must not
        // stretch or cut `finish`'s wait.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Starts the writer thread; records logged before wait for it. Called where the loop
    /// starts running, so that a thread that cannot be made fails the start, not a log line in
    /// the middle of a run.
    public func start() {
        locked {
            if writer == nil && !finished { writer = JoinableThread(name: "zpubd-log") { [self] in write() } }
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// A logger like `logger` whose records go through this queue.
    public func logger(like logger: Logger) -> Logger {
        var queued = logger
        queued.handler = QueuedLogHandler(wrapping: logger.handler, queue: self)
        return queued
    }

    /// Records dropped so far because the queue was full.
    public var droppedRecords: Int { locked { totalDropped } }

    fileprivate func enqueue(_ event: LogEvent, to handler: any LogHandler) {
        locked {
            guard !finished else { return }
            if pending.count >= capacity {
                dropped += 1
                totalDropped += 1
                return
            }
            pending.append(Record(handler: handler, event: event))
            pthread_cond_signal(condition)
        }
    }

    /// Stops taking records, and waits up to `milliseconds` for those queued to be written
    /// (the last lines of a stopping loop), then for the writer to end. A writer blocked on its
    /// reader is left behind: the process is on its way out.
    public func finish(waitingMilliseconds milliseconds: Int) {
        precondition(milliseconds >= 0, "a wait of \(milliseconds) ms")
        var deadline = SystemClock.monotonicDeadline(afterMilliseconds: milliseconds)
        let written: Bool = locked {
            finished = true
            pthread_cond_broadcast(condition)
            guard writer != nil else { return false }
            while !pending.isEmpty || writing {
                // Any error is taken as the end of the wait (ETIMEDOUT, or EINVAL never to loop on).
                if pthread_cond_timedwait(condition, mutex, &deadline) != 0 { return false }
            }
            return true
        }
        if written, let writer = locked({ writer }) { writer.join() }
    }

    private func write() {
        while true {
            let taken: (records: [Record], dropped: Int)? = locked {
                while pending.isEmpty && !finished { pthread_cond_wait(condition, mutex) }
                if pending.isEmpty && dropped == 0 { return nil }
                let taken = (pending, dropped)
                pending.removeAll(keepingCapacity: true)
                dropped = 0
                writing = true
                return taken
            }
            guard let taken else { return }
            let (records, droppedNow) = taken
            for record in records { record.handler.log(event: record.event) }
            if droppedNow > 0, let last = records.last {
                last.handler.log(
                    event: LogEvent(
                        level: .warning,
                        message:
                            "\(droppedNow) log records were dropped: the log's reader (the journal, or whatever reads zpubd's stderr) did not keep up, and the forwarding loop does not wait for it; the loop's lines written just before this one may be late and carry this time",
                        metadata: nil, source: "zpubd", file: #fileID, function: #function, line: #line))
            }
            locked {
                writing = false
                pthread_cond_broadcast(condition)
            }
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

/// Hands each record to a `LogRecordQueue`, to be written by `wrapped` on the queue's thread.
struct QueuedLogHandler: LogHandler {
    var wrapped: any LogHandler
    let queue: LogRecordQueue

    init(wrapping handler: any LogHandler, queue: LogRecordQueue) {
        wrapped = handler
        self.queue = queue
    }

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        queue.enqueue(event, to: wrapped)
    }
}
