import Logging
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// What zpubd does when it runs out of file descriptors.
///
/// libzmq 4.3.4's TCP listener, when `accept()` fails with EMFILE, reports ACCEPT_FAILED and
/// returns; its epoll is level-triggered, so with a connection still waiting it calls `accept()`
/// again at once, forever: one I/O thread spins at full speed. `zmq_unbind` would stop it but
/// also closes every connection made through that endpoint, the peers we mean to protect.
///
/// So, at the first ACCEPT_FAILED with EMFILE or ENFILE (owned by the forwarding loop, which
/// reads the monitor events):
/// 1. every TCP listener gets a socket filter that drops everything (classic BPF, "return 0"):
///    the kernel then drops incoming SYNs for it, so no new connection queues up; clients see a
///    lost SYN and retry (libzmq reconnects by itself). Established connections are separate
///    sockets and are not touched;
/// 2. the soft descriptor limit is raised to the hard one (zpubd starts with the soft limit
///    below the hard one for this reason, `DescriptorGuard.startLimit`), so libzmq can accept
///    the connections already queued; they are ordinary peers then, and idle or garbage ones
///    are dropped after `handshake_timeout_ms`. With the queue empty, nothing spins;
/// 3. once a second the open descriptors are counted; when they are back under 90% of the soft
///    limit in force before, the limit is restored and the filters removed.
/// The listeners' descriptors come from libzmq's LISTENING events; each is checked to be that
/// endpoint's listening socket still (by its port) before a filter goes on or off.
public final class DescriptorGuard {
    private var listeners: [String: Int32] = [:]
    private(set) var paused = false
    private(set) var pauses: UInt64 = 0
    private var limitBeforePause: rlim_t = 0
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// The soft limit zpubd sets at start: the hard limit less a reserve, so that a pause can
    /// raise it to let libzmq empty its accept queues (100 connections per listener by default).
    /// The reserve is 1/16 of the hard limit, at most 1,024.
    public static func startLimit(hard: Int) -> Int {
        hard - min(1_024, hard / 16)
    }

    /// A LISTENING event: `endpoint` listens on `fileDescriptor`.
    func listening(endpoint: String, fileDescriptor: Int32) {
        guard endpoint.hasPrefix("tcp://") else { return }  // filters drop SYNs: TCP only
        listeners[endpoint] = fileDescriptor
    }

    /// An ACCEPT_FAILED event with its errno.
    func acceptFailed(errno code: Int32, endpoint: String) {
        guard code == EMFILE || code == ENFILE, !paused else { return }
        paused = true
        pauses &+= 1
        for (listenerEndpoint, descriptor) in listeners
        where !setDropAllFilter(descriptor, endpoint: listenerEndpoint, on: true) {
            logger.error(
                "cannot pause new connections on \(listenerEndpoint): setsockopt(SO_ATTACH_FILTER) failed (errno \(errno))"
            )
        }
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        limitBeforePause = limit.rlim_cur
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(RLIMIT_NOFILE_VALUE, &limit)
        }
        let cause = code == EMFILE ? "zpubd's limit of \(limitBeforePause)" : "the system's limit (ENFILE)"
        logger.warning(
            "out of file descriptors (\(cause)): new TCP connections are refused until some are free; connected peers are served as before. Raise LimitNOFILE= (or ulimit -n) if this is normal load",
            metadata: ["endpoint": "\(endpoint)"])
    }

    /// Called once a second by the forwarding loop: resumes when descriptors are free again.
    func tick() {
        guard paused, let open = Self.openDescriptors() else { return }
        let threshold = Int(limitBeforePause) * 9 / 10
        guard open < threshold else { return }
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        limit.rlim_cur = limitBeforePause
        setrlimit(RLIMIT_NOFILE_VALUE, &limit)
        for (endpoint, descriptor) in listeners { _ = setDropAllFilter(descriptor, endpoint: endpoint, on: false) }
        paused = false
        logger.notice("file descriptors are free again (\(open) open of \(limitBeforePause)): accepting connections")
    }

    /// Attaches (or removes) a filter that drops every packet, after checking that the
    /// descriptor is still this endpoint's listening socket: a listener libzmq closed (on a
    /// reload, say) leaves its number to be reused, and another socket must never be filtered.
    private func setDropAllFilter(_ descriptor: Int32, endpoint: String, on: Bool) -> Bool {
        var listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1,
            let port = endpoint.split(separator: ":").last.flatMap({ UInt16($0) }),
            Self.localPort(of: descriptor) == port
        else {
            return false
        }
        guard on else {
            var unused: Int32 = 0
            return setsockopt(descriptor, SOL_SOCKET, Self.detachFilter, &unused, socklen_t(MemoryLayout<Int32>.size))
                == 0
        }
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } = { BPF_RET | BPF_K, 0, 0, 0 }:
        // "accept 0 bytes of the packet", i.e. drop it. On a little-endian machine that is the
        // 64-bit integer 6. struct sock_fprog { u16 len; (padding) struct sock_filter *filter; }.
        #if _endian(little)
            var instruction: UInt64 = 0x06
            return withUnsafeMutablePointer(to: &instruction) { filter in
                var program: (UInt64, UInt64) = (1, UInt64(UInt(bitPattern: filter)))
                return setsockopt(
                    descriptor, SOL_SOCKET, Self.attachFilter, &program, socklen_t(MemoryLayout.size(ofValue: program)))
                    == 0
            }
        #else
            return false
        #endif
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

    /// <asm-generic/socket.h>; not in Swift's Glibc module.
    private static let attachFilter: Int32 = 26
    private static let detachFilter: Int32 = 27

    /// Descriptors open in this process, or nil when that cannot be read (e.g. none are left).
    private static func openDescriptors() -> Int? {
        guard let entries = try? TextFile.entries("/proc/self/fd") else { return nil }
        return entries.count - 1  // the directory's own descriptor, open while it is read
    }
}

#if canImport(Glibc)
    private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#endif
