import CSystemd

/// Tells the service manager about the daemon's state through `sd_notify` (the `NOTIFY_SOCKET`
/// protocol). Every call is a no-op when the daemon was not started by systemd.
public struct Notifier: Sendable {
    public init() {}

    /// True when `NOTIFY_SOCKET` is set, i.e. somebody listens.
    public var isActive: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends `READY=1`, optionally with a status line.
    public func ready(status: String? = nil) {
        send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// Sends `STATUS=...`: the one-line status `systemctl status` shows.
    public func status(_ text: String) {
        send(["STATUS=\(text)"])
    }

    /// Sends `RELOADING=1` with `MONOTONIC_USEC`, as systemd expects at the start of a reload.
    public func reloading() {
        send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"])
    }

    /// Sends `STOPPING=1`, with `EXTEND_TIMEOUT_USEC` when the stop may take `milliseconds`:
    /// systemd then waits that long from now even past the unit's TimeoutStopSec= (it only
    /// ever extends the timeout).
    public func stopping(mayTakeMilliseconds milliseconds: Int? = nil) {
        send(["STOPPING=1"] + (milliseconds.map { ["EXTEND_TIMEOUT_USEC=\(UInt64($0) * 1_000)"] } ?? []))
    }

    /// Sends `WATCHDOG=1`. Only the forwarding loop itself may call this: a ping from anywhere
    /// else would keep a hung loop alive.
    public func watchdogPing() {
        send(["WATCHDOG=1"])
    }

    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`), in microseconds, or nil.
    public func watchdogIntervalMicroseconds() -> UInt64? {
        var usec: UInt64 = 0
        let enabled = sd_watchdog_enabled(0, &usec)
        return enabled > 0 && usec > 0 ? usec : nil
    }

    private func send(_ assignments: [String]) {
        _ = sd_notify(0, assignments.joined(separator: "\n"))
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}

#if canImport(Glibc)
    import Glibc
#endif
