import CKernel
import Logging
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// What zpubd does as it nears the end of its file descriptors: carries out the decisions of
/// `ZPubCore.DescriptorBudget` (which explains why it pauses *before* the limit). Owned by the
/// forwarding loop, which reads the monitor events that feed it.
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
/// Once a second the open descriptors are counted; below the resume point, the limit in force
/// before is restored and the filters come off. While not paused, the same tick probes the
/// lowest free descriptor, which catches what no monitor reports (control, HTTP, files).
/// The listeners' descriptors come from libzmq's LISTENING events; each is checked to be that
/// endpoint's listening socket still (by its port) before a filter goes on or off.
public final class DescriptorGuard {
    private var listeners: [String: Int32] = [:]
    private var budget = DescriptorBudget()
    private let logger: Logger

    var paused: Bool { budget.paused }
    var pauses: UInt64 { budget.pauses }

    init(logger: Logger) {
        self.logger = logger
    }

    /// A LISTENING event: `endpoint` listens on `fileDescriptor`.
    func listening(endpoint: String, fileDescriptor: Int32) {
        guard endpoint.hasPrefix("tcp://") else { return }  // filters drop SYNs: TCP only
        listeners[endpoint] = fileDescriptor
    }

    /// An ACCEPTED or CONNECTED event: a connection got `fileDescriptor`.
    func opened(fileDescriptor: Int32, endpoint: String) {
        let limits = Self.limits()
        carryOut(
            budget.opened(descriptor: Int(fileDescriptor), softLimit: limits.soft),
            cause: "descriptor \(fileDescriptor) of \(limits.soft) in use", endpoint: endpoint)
    }

    /// An ACCEPT_FAILED event with its errno.
    func acceptFailed(errno code: Int32, endpoint: String) {
        let limits = Self.limits()
        let action = budget.acceptFailed(outOfDescriptors: code == EMFILE || code == ENFILE, softLimit: limits.soft)
        carryOut(
            action, cause: code == EMFILE ? "at zpubd's limit of \(limits.soft)" : "the system's limit (ENFILE)",
            endpoint: endpoint)
    }

    /// Called once a second by the forwarding loop.
    func tick() {
        if budget.paused {
            guard let open = Self.openDescriptors() else { return }
            carryOut(budget.counted(open: open), cause: "\(open) open", endpoint: nil)
        } else {
            let lowestFree = Int(ckernel_lowest_free_descriptor())
            let limits = Self.limits()
            // -1: none free at all (EMFILE); treat as the limit itself.
            let probe = lowestFree < 0 ? limits.soft : lowestFree
            carryOut(
                budget.probed(lowestFree: probe, softLimit: limits.soft),
                cause: "descriptor \(probe) of \(limits.soft) is the lowest free", endpoint: nil)
        }
    }

    private func carryOut(_ action: DescriptorBudget.Action, cause: String, endpoint: String?) {
        switch action {
        case .none:
            return
        case .pause:
            for (listenerEndpoint, descriptor) in listeners
            where !setDropAllFilter(descriptor, endpoint: listenerEndpoint, on: true) {
                logger.error(
                    "cannot pause new connections on \(listenerEndpoint): setsockopt(SO_ATTACH_FILTER) failed (errno \(errno))"
                )
            }
            var limit = rlimit()
            getrlimit(RLIMIT_NOFILE_VALUE, &limit)
            if limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max
                setrlimit(RLIMIT_NOFILE_VALUE, &limit)
            }
            var metadata: Logger.Metadata = [:]
            if let endpoint { metadata["endpoint"] = "\(endpoint)" }
            logger.warning(
                "out of file descriptors soon (\(cause); limit \(budget.limitBeforePause)): new TCP connections are refused until some are free; connected peers are served as before. Raise LimitNOFILE= (or ulimit -n) if this is normal load",
                metadata: metadata)
        case .resume(let restoredLimit):
            var limit = rlimit()
            getrlimit(RLIMIT_NOFILE_VALUE, &limit)
            limit.rlim_cur = rlim_t(restoredLimit)
            setrlimit(RLIMIT_NOFILE_VALUE, &limit)
            for (endpoint, descriptor) in listeners { _ = setDropAllFilter(descriptor, endpoint: endpoint, on: false) }
            logger.notice("file descriptors are free again (\(cause) of \(restoredLimit)): accepting connections")
        }
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
