#if canImport(Glibc)
    import Glibc
#endif

/// The two clocks the broker reads: wall time for "last seen" stamps people read, monotonic time
/// for intervals (uptime, watchdog, drain deadlines) that must not jump with the wall clock.
enum Clock {
    static func wallMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000 + UInt64(now.tv_nsec) / 1_000_000
    }

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
