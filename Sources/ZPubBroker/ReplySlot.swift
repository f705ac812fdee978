import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// A one-shot answer from one thread to another, with a deadline on the waiting side so that a
/// stalled forwarding loop cannot hang the control server.
final class ReplySlot<Value: Sendable>: Sendable {
    private let state = Locked<Value?>(nil)
    private let condition = ConditionFlag()
    /// Called once the value is in, for a side that does not wait but polls (`value`): the
    /// control server, which goes on serving others while a SNAPSHOT waits.
    private let onFulfil: (@Sendable () -> Void)?

    init(onFulfil: (@Sendable () -> Void)? = nil) {
        self.onFulfil = onFulfil
    }

    func fulfill(_ value: Value) {
        state.withLock { $0 = value }
        condition.signal()
        onFulfil?()
    }

    /// Wakes the waiting side without a value: the loop has stopped, and nothing will come.
    /// `wait` returns nil at once, and `onFulfil` is called, as if the time were up.
    func abandon() {
        onFulfil?()
        condition.signal()
    }

    /// The value if it has arrived, without waiting.
    var value: Value? { state.withLock { $0 } }

    /// The value, or nil if it did not arrive within `milliseconds`.
    func wait(milliseconds: Int) -> Value? {
        guard condition.wait(milliseconds: milliseconds) else { return nil }
        return state.withLock { $0 }
    }
}

/// A flag that one thread sets and another waits for, with a timeout (pthread mutex + condvar).
// Unchecked: `isSet` is read and written only with the mutex held.
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
        var deadline = SystemClock.monotonicDeadline(afterMilliseconds: max(milliseconds, 0))
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
