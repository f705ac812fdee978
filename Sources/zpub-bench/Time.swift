import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// The monotonic clock, in nanoseconds. It is the same clock in every process on the machine,
/// so a timestamp written into a payload by the publisher can be compared with the receiver's.
enum Time {
    @inline(__always)
    static func now() -> UInt64 { SystemClock.monotonicNanoseconds() }

    static func sleep(nanoseconds: UInt64) {
        var spec = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&spec, &remaining) != 0 && errno == EINTR { spec = remaining }
    }

    static func sleep(milliseconds: Int) { sleep(nanoseconds: UInt64(milliseconds) * 1_000_000) }

    static func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }
}
