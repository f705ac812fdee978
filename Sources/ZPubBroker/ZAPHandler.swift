import Logging
import ZPubCore
import ZeroMQ

/// The ZeroMQ Authentication Protocol handler (RFC 27): libzmq asks it, for every new
/// connection to a socket with a ZAP domain, whether to let the peer in. zpubd gives each of
/// its sockets a domain (its role) and enforces it (ZMQ_ZAP_ENFORCE_DOMAIN), so no connection
/// gets past the handshake without an answer from here: fail closed.
///
/// Runs on its own thread with a REP socket on `inproc://zeromq.zap.01`; its policies are
/// swapped on reload; its counters are read by the control server.
final class ZAPHandler: @unchecked Sendable {
    static let endpoint = "inproc://zeromq.zap.01"

    struct Counters: Sendable {
        var allowed: [String: UInt64] = [:]
        var denied: [String: UInt64] = [:]
    }

    private let socket: Socket
    private let policies: Locked<[String: AccessPolicy]>
    private let counters = Locked(Counters())
    private let logger: Logger
    let mailbox = Mailbox<Bool>()
    /// Denials are logged at most this often per second; the rest are summed up.
    private static let logsPerSecond = 10
    private var logWindowStart: UInt64 = 0
    private var logsInWindow = 0
    private var suppressed = 0

    init(context: Context, policies: [String: AccessPolicy], logger: Logger) throws {
        socket = try Socket(context, type: .rep)
        try socket.setOption(.linger, 0)
        try socket.bind(Self.endpoint)
        self.policies = Locked(policies)
        self.logger = logger
    }

    /// Closes the socket of a handler that never ran (start-up failed).
    func close() { socket.close() }

    func update(_ newPolicies: [String: AccessPolicy]) {
        policies.withLock { $0 = newPolicies }
    }

    var snapshot: Counters { counters.withLock { $0 } }

    func run() {
        var poller = Poller()
        let socketIndex = poller.add(socket)
        let mailboxIndex = poller.add(fileDescriptor: mailbox.fileDescriptor)
        while true {
            guard (try? poller.poll(timeoutMilliseconds: 1_000)) != nil else { break }
            if poller.isReadable(mailboxIndex) && !mailbox.take().isEmpty { break }
            if poller.isReadable(socketIndex) {
                while let request = try? socket.receiveFrames(dontWait: true) {
                    _ = try? socket.send(frames: answer(request))
                }
            }
            flushSuppressed(force: false)
        }
        flushSuppressed(force: true)
        socket.close()
    }

    /// The reply to one ZAP request: [version, request id, status code, status text, user id, metadata].
    func answer(_ request: [[UInt8]]) -> [[UInt8]] {
        guard request.count >= 6, request[0] == Array("1.0".utf8) else {
            return reply(id: request.count > 1 ? request[1] : [], code: "400", text: "malformed ZAP request")
        }
        let domain = String(decoding: request[2], as: UTF8.self)
        let address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        let credentials = request.count > 6 ? request[6] : nil
        let denial: String? =
            if let policy = policies.withLock({ $0[domain] }) {
                policy.denial(address: address, mechanism: mechanism, credentials: credentials)
            } else {
                "unknown ZAP domain"
            }
        if let denial {
            counters.withLock { $0.denied[domain, default: 0] &+= 1 }
            logDenial(
                "denied a connection to \(domain): \(denial)",
                metadata: [
                    "socket": "\(domain)", "peer": "\(address.isEmpty ? "(local)" : address)",
                    "mechanism": "\(mechanism)",
                    "error": "\(denial)",
                ])
            return reply(id: request[1], code: "400", text: denial)
        }
        counters.withLock { $0.allowed[domain, default: 0] &+= 1 }
        let user = mechanism == "CURVE" ? (credentials.flatMap { CurveKey(bytes: $0)?.z85 } ?? "") : ""
        return reply(id: request[1], code: "200", text: "OK", user: user)
    }

    private func reply(id: [UInt8], code: String, text: String, user: String = "") -> [[UInt8]] {
        [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
    }

    /// A flood of garbage connections must not become a flood of log lines.
    private func logDenial(_ message: String, metadata: Logger.Metadata) {
        let now = Clock.monotonicNanoseconds()
        if now &- logWindowStart >= 1_000_000_000 {
            flushSuppressed(force: true)
            logWindowStart = now
            logsInWindow = 0
        }
        if logsInWindow < Self.logsPerSecond {
            logsInWindow += 1
            logger.warning("\(message)", metadata: metadata)
        } else {
            suppressed += 1
        }
    }

    private func flushSuppressed(force: Bool) {
        guard suppressed > 0, force || Clock.monotonicNanoseconds() &- logWindowStart >= 1_000_000_000 else { return }
        logger.warning("\(suppressed) more connections denied (not logged one by one)")
        suppressed = 0
    }
}
