import CKernel
import Logging
import Synchronization
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// What zpubd does as it nears the end of its file descriptors: carries out the decisions of
/// `ZPubCore.DescriptorBudget` (which explains why it pauses *before* the limit).
///
/// Two libzmq 4.3.4 behaviours shape it:
/// - its ipc listener aborts the process when `accept()` fails with EMFILE, so the table must
///   never fill up: TCP, the only transport strangers reach, pauses with headroom to spare;
/// - its TCP listener, when `accept()` fails, retries at once forever (level-triggered epoll),
///   and `zmq_unbind` would close every connection made through the endpoint.
///
/// A pause:
/// 1. puts a socket filter that drops everything on every TCP listener: the kernel drops new
///    SYNs, nothing new queues, and clients retry as after a lost packet. Established
///    connections are separate sockets and are not touched;
/// 2. raises the soft limit to the hard one, so that libzmq can accept the connections already
///    queued (100 per listener at most) without nearing the end; idle or garbage ones are then
///    dropped after `handshake_timeout_ms`.
/// Once a second, while paused, the open descriptors are counted; below the resume point, the
/// limit in force before is restored and the filters come off.
///
/// Two threads feed it, hence the lock: the connection event reader, with libzmq's monitor
/// events (LISTENING gives the listeners' descriptors, ACCEPTED and CONNECTED each new
/// connection's; `ConnectionEventReader`), and the guard's own thread (`run`), which probes the
/// lowest free descriptor (every 10 ms once the table is half way to the pause point). Neither
/// waits for the forwarding loop, which can be held inside libzmq for seconds
/// (docs/reliability.md, "A subscription flood") while libzmq's I/O thread goes on accepting.
final class DescriptorGuard: Sendable {
    private struct State {
        var listeners: [String: Int32] = [:]
        var budget = DescriptorBudget()
    }

    private let state = Locked(State())
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

    /// How often the guard's thread probes the lowest free descriptor: every 10 ms once half
    /// the way to the pause point, every 100 ms before that (and while paused, when only the
    /// once-a-second count matters). Below half, reaching the pause point within 100 ms takes
    /// more new connections than libzmq accepts in that time for any limit worth having, and
    /// their ACCEPTED events reach the loop too. Idle, the probe costs about 0.05% of a core.
    static let nearProbeIntervalMicroseconds: UInt32 = 10_000
    static let farProbeIntervalMicroseconds: UInt32 = 100_000

    var paused: Bool { state.withLock { $0.budget.paused } }
    /// Whether new connections are paused, and how often they were: for STATS, under one lock.
    var status: (paused: Bool, pauses: UInt64) { state.withLock { ($0.budget.paused, $0.budget.pauses) } }

    init(logger: Logger) {
        self.logger = logger
    }

    /// The guard's thread: probes, and counts once a second while paused or settling, until
    /// `stop`.
    func run() {
        var lastCount = 0.0
        var near = false
        while !stopRequested.load(ordering: .relaxed) {
            usleep(near ? Self.nearProbeIntervalMicroseconds : Self.farProbeIntervalMicroseconds)
            let now = Self.nowSeconds()
            let (paused, settling) = state.withLock { ($0.budget.paused, $0.budget.settling) }
            if !paused {
                let lowestFree = Int(ckernel_lowest_free_descriptor())
                let soft = Self.limits().soft
                // -1: none free at all (EMFILE); the limit itself, then.
                let probe = lowestFree < 0 ? soft : lowestFree
                // Just reopened, a burst may come at any moment: probed often.
                near = settling || probe >= DescriptorBudget.pausePoint(forLimit: soft) / 2
                update("descriptor \(probe) is the lowest free", endpoint: nil) {
                    $0.probed(lowestFree: probe, softLimit: soft, nowSeconds: now)
                }
            }
            // Paused, or reopened with the limit still raised: counted once a second.
            if (paused || settling) && now - lastCount >= 1 {
                if paused { near = false }
                lastCount = now
                guard let open = Self.openDescriptors() else { continue }
                update("\(open) open", endpoint: nil) { $0.counted(open: open, nowSeconds: now) }
            }
        }
    }

    func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// A LISTENING event: `endpoint` listens on `fileDescriptor`. Filtered at once during a
    /// pause (a listener bound by a reload, say).
    func listening(endpoint: String, fileDescriptor: Int32) {
        guard endpoint.hasPrefix("tcp://") else { return }  // filters drop SYNs: TCP only
        state.withLock { state in
            state.listeners[endpoint] = fileDescriptor
            if state.budget.paused && !setDropAllFilter(fileDescriptor, endpoint: endpoint, on: true) {
                state.listeners[endpoint] = nil
            }
        }
    }

    /// An ACCEPTED or CONNECTED event: a connection got `fileDescriptor`.
    func opened(fileDescriptor: Int32, endpoint: String) {
        let soft = Self.limits().soft
        update("descriptor \(fileDescriptor) in use", endpoint: endpoint) {
            $0.opened(descriptor: Int(fileDescriptor), softLimit: soft, nowSeconds: Self.nowSeconds())
        }
    }

    /// An ACCEPT_FAILED event with its errno.
    func acceptFailed(errno code: Int32, endpoint: String) {
        let soft = Self.limits().soft
        let failure: DescriptorBudget.AcceptFailure =
            code == EMFILE ? .processLimit : code == ENFILE ? .systemLimit : .other
        let cause = code == ENFILE ? "the system's limit (ENFILE)" : "at zpubd's limit"
        update(cause, endpoint: endpoint) { $0.acceptFailed(failure, softLimit: soft, nowSeconds: Self.nowSeconds()) }
    }

    /// Asks the budget under the lock and carries out its answer there too, so that a pause and
    /// a resume can never interleave between the two threads. The log line is written after
    /// the lock is released: the forwarding loop takes the same lock (`status`), and a write to
    /// a stalled log reader (a full stderr pipe, journald stuck) would hold it there.
    private func update(
        _ cause: @autoclosure () -> String, endpoint: String?,
        _ decide: (inout DescriptorBudget) -> DescriptorBudget.Action
    ) {
        let line: (level: Logger.Level, message: Logger.Message)? = state.withLock { state in
            let action = decide(&state.budget)
            switch action {
            case .none:
                return nil
            case .pause:
                for (listenerEndpoint, descriptor) in state.listeners
                where !setDropAllFilter(descriptor, endpoint: listenerEndpoint, on: true) {
                    // No longer this endpoint's listener (unbound by a reload): forget it.
                    state.listeners[listenerEndpoint] = nil
                }
                var limit = rlimit()
                getrlimit(RLIMIT_NOFILE_VALUE, &limit)
                if limit.rlim_cur < limit.rlim_max {
                    limit.rlim_cur = limit.rlim_max
                    setrlimit(RLIMIT_NOFILE_VALUE, &limit)
                }
                return (
                    .warning,
                    "out of file descriptors soon (\(cause()); limit \(state.budget.limitBeforePause)): new TCP connections are refused until some are free; connected peers are served as before. Raise LimitNOFILE= (or ulimit -n) if this is normal load"
                )
            case .reopen:
                for (endpoint, descriptor) in state.listeners {
                    _ = setDropAllFilter(descriptor, endpoint: endpoint, on: false)
                }
                return (
                    .notice,
                    "file descriptors are free again (\(cause()) of \(state.budget.limitBeforePause)): accepting connections"
                )
            case .resume(let restoredLimit):
                var limit = rlimit()
                getrlimit(RLIMIT_NOFILE_VALUE, &limit)
                limit.rlim_cur = rlim_t(restoredLimit)
                setrlimit(RLIMIT_NOFILE_VALUE, &limit)
                return (.info, "the open file limit is back at \(restoredLimit) (\(cause()))")
            }
        }
        guard let line else { return }
        var metadata: Logger.Metadata = [:]
        if line.level == .warning, let endpoint { metadata["endpoint"] = "\(endpoint)" }
        logger.log(level: line.level, line.message, metadata: metadata)
    }

    private static func nowSeconds() -> Double {
        Double(SystemClock.monotonicNanoseconds()) / 1e9
    }

    /// Attaches (or removes) the drop-all filter, after checking that the descriptor is still
    /// this endpoint's listening socket: a listener libzmq closed (on a reload, say) leaves its
    /// number to be reused, and another socket must never be filtered.
    private func setDropAllFilter(_ descriptor: Int32, endpoint: String, on: Bool) -> Bool {
        var listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1,
            let port = endpoint.split(separator: ":").last.flatMap({ UInt16($0) }),
            Self.localPort(of: descriptor) == port
        else {
            return false
        }
        return ckernel_set_drop_all_filter(descriptor, on ? 1 : 0) == 0
    }

    /// The local port of a TCP socket (IPv4 or IPv6), or nil.
    private static func localPort(of descriptor: Int32) -> UInt16? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard status == 0 else { return nil }
        switch Int32(address.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        default:
            return nil
        }
    }

    private static func limits() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        let clamp = { (value: rlim_t) in value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value) }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// Descriptors open in this process, or nil when that cannot be read (e.g. none are left).
    private static func openDescriptors() -> Int? {
        guard let entries = try? TextFile.entries("/proc/self/fd") else { return nil }
        return entries.count - 1  // the directory's own descriptor, open while it is read
    }
}

#if canImport(Glibc)
    private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#endif
