#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A value that several threads share, behind a pthread mutex.
///
/// Not the standard library's `Synchronization.Mutex`: on Linux that is built on raw futex
/// calls, which ThreadSanitizer does not see, so `make sanitize` reported every access it
/// guards as a data race (reproduced with two threads and a `Mutex<[Int]>`). A pthread mutex
/// costs the same uncontended and keeps the sanitizer's reports meaningful.
// Unchecked: every access to the value goes through the pthread mutex (`withLock`).
public final class Locked<Value: Sendable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock; keep it short and never block in it.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
