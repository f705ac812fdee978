import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Commands for a thread that sleeps in `zmq_poll`: a locked queue plus a self-pipe whose read
/// end the owner adds to its poll set, so a posted command wakes it at once.
final class Mailbox<Command: Sendable>: Sendable {
    /// Poll this for input; then call `take()`.
    let fileDescriptor: Int32
    private let writeEnd: Int32
    private let queue = Mutex<[Command]>([])

    init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed: errno \(errno)")
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        fileDescriptor = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(fileDescriptor)
        close(writeEnd)
    }

    func post(_ command: Command) {
        queue.withLock { $0.append(command) }
        var byte: UInt8 = 1
        // A full pipe already means "wake up"; nothing is lost by a failed write.
        _ = write(writeEnd, &byte, 1)
    }

    /// All commands posted so far, oldest first; clears the wake-up.
    func take() -> [Command] {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(fileDescriptor, &buffer, buffer.count) == buffer.count {}
        return queue.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }
}

/// A one-shot answer from one thread to another, with a deadline on the waiting side so that a
/// stalled forwarding loop cannot hang the control server.
final class ReplySlot<Value: Sendable>: Sendable {
    private let state = Mutex<Value?>(nil)
    private let condition = ConditionFlag()

    func fulfill(_ value: Value) {
        state.withLock { $0 = value }
        condition.signal()
    }

    /// The value, or nil if it did not arrive within `milliseconds`.
    func wait(milliseconds: Int) -> Value? {
        guard condition.wait(milliseconds: milliseconds) else { return nil }
        return state.withLock { $0 }
    }
}

/// A flag that one thread sets and another waits for, with a timeout (pthread mutex + condvar).
final class ConditionFlag: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var isSet = false

    init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    func signal() {
        pthread_mutex_lock(&mutex)
        isSet = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Waits until set; false on timeout. A negative timeout waits forever.
    func wait(milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while !isSet {
            if milliseconds < 0 {
                pthread_cond_wait(&cond, &mutex)
            } else if pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT {
                return isSet
            }
        }
        return true
    }
}
