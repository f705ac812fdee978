import Systemd
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// Tells systemd what the forwarding loop and the pair link have to say (`WATCHDOG=1`,
/// `STATUS=`) from a thread of its own, so that neither ever waits for systemd.
///
/// `sd_notify` writes a datagram to PID 1's notify socket on a blocking socket. While PID 1
/// reads nothing (busy: a long `daemon-reload`, a storm of units) and its queue is full (at
/// `net.unix.max_dgram_qlen` datagrams, 10 by default), the send waits; on the loop's thread,
/// forwarding stopped with it for every subscriber (an audit; reproduced by a notify socket
/// nobody reads, `SystemdServiceTests`). On the pair link's, heartbeats did, and the peer took
/// over.
///
/// Requests are taken together: one ping, the newest status. A ping still comes from the loop
/// alone: this thread sends one only when the loop asked for it since the last, so a hung loop
/// stops the pings as before (`Notifier.watchdogPing`). zpubd's main thread announces its
/// start, reloads and stop through it too (`Announcement`, in order), so that a PID 1 that
/// reads nothing holds neither a reload nor the stop.
public final class NotifyRelay: @unchecked Sendable {
    // Unchecked: `wakeup` is a POSIX semaphore, safe from any thread; the rest is `Locked`
    // or immutable.
    /// What zpubd's main thread tells systemd, sent in the order told.
    public enum Announcement: Sendable {
        case ready(status: String?)
        case reloading
        case stopping(mayTakeMilliseconds: Int?)
    }

    private struct Pending: Sendable {
        var ping = false
        var status: String?
        var announcements: [Announcement] = []
        var finished = false
    }

    /// Announcements waiting at most: each comes from a signal an operator sent; past this
    /// many unsent (PID 1 reads nothing), newer ones are not kept.
    static let maxAnnouncements = 64

    private let notifier: Notifier
    private let pending = Locked(Pending())
    private let wakeup: UnsafeMutablePointer<sem_t>
    /// Set by the thread as it ends; waited for on the monotonic clock (a semaphore's timed
    /// wait is on the wall clock, which a step back at boot would have made hold zpubd's exit
    /// for as long as it went back).
    private let ended = ConditionFlag()
    private let thread: Locked<JoinableThread?> = Locked(nil)

    /// `notifier`'s thread starts only when systemd listens (`Notifier.isActive`); otherwise
    /// every call is a no-op, as `Notifier`'s are.
    public init(_ notifier: Notifier) {
        self.notifier = notifier
        wakeup = .allocate(capacity: 1)
        sem_init(wakeup, 0, 0)
        guard notifier.isActive else { return }
        let started = JoinableThread(name: "zpubd-notify", stackSize: 256 << 10) { [self] in self.run() }
        thread.withLock { $0 = started }
    }

    deinit {
        sem_destroy(wakeup)
        wakeup.deallocate()
    }

    /// Whether systemd listens.
    public var isActive: Bool { notifier.isActive }

    /// The watchdog interval systemd asked for, in microseconds, or nil.
    public func watchdogIntervalMicroseconds() -> UInt64? { notifier.watchdogIntervalMicroseconds() }

    /// Asks for `WATCHDOG=1`. Only the forwarding loop calls this.
    public func watchdogPing() {
        post { $0.ping = true }
    }

    /// Asks for `STATUS=text`; a status not sent yet is replaced.
    public func status(_ text: String) {
        post { $0.status = text }
    }

    /// Announces `READY=1`, `RELOADING=1` or `STOPPING=1` (`Notifier`'s), after those told before.
    public func announce(_ announcement: Announcement) {
        post { pending in
            if pending.announcements.count < Self.maxAnnouncements { pending.announcements.append(announcement) }
        }
    }

    /// Sends what is still asked for and ends the thread, waiting for it `milliseconds` at
    /// most: a PID 1 that reads nothing would otherwise hold zpubd's exit (the thread, stuck
    /// in sd_notify, then ends with the process). Call once, after the last request.
    public func finish(waitingMilliseconds milliseconds: Int = 1_000) {
        guard let started = thread.withLock({ $0 }) else { return }
        post { $0.finished = true }
        guard ended.wait(milliseconds: milliseconds) else { return }
        started.join()
    }

    private func post(_ change: (inout Pending) -> Void) {
        guard notifier.isActive else { return }
        pending.withLock(change)
        sem_post(wakeup)
    }

    private func run() {
        while true {
            while sem_wait(wakeup) != 0 && errno == EINTR {}
            let taken = pending.withLock { pending in
                defer { pending = Pending(finished: pending.finished) }
                return pending
            }
            for announcement in taken.announcements {
                switch announcement {
                case .ready(let status): notifier.ready(status: status)
                case .reloading: notifier.reloading()
                case .stopping(let milliseconds): notifier.stopping(mayTakeMilliseconds: milliseconds)
                }
            }
            if taken.ping { notifier.watchdogPing() }
            if let status = taken.status { notifier.status(status) }
            if taken.finished {
                ended.signal()
                return
            }
        }
    }
}
