#if canImport(Glibc)
    import Glibc
#endif

/// The two clocks zpub reads: wall time for "last seen" stamps people read, monotonic time for
/// intervals (uptime, watchdog, drain deadlines, timeouts) that must not jump with the wall
/// clock. The pure state machines take these values as arguments (the clock is injected); only
/// the shells that own sockets read them. (Not named `Clock`: that is the standard library's
/// protocol.)
public enum SystemClock {
    public static func wallMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000 + UInt64(now.tv_nsec) / 1_000_000
    }

    /// Wall time in seconds since 1970, as JWTs state theirs (`exp`, `nbf`).
    public static func wallSeconds() -> Double {
        Double(wallMilliseconds()) / 1_000
    }

    public static func monotonicMilliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// The monotonic time `milliseconds` (0 or more) from now, as the timed waits of threads
    /// take it (a condition variable set to CLOCK_MONOTONIC).
    public static func monotonicDeadline(afterMilliseconds milliseconds: Int) -> timespec {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + (milliseconds % 1_000) * 1_000_000
        deadline.tv_sec += milliseconds / 1_000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        return deadline
    }
}
