import Logging
import ZPubCore
import ZeroMQ

/// The ZeroMQ Authentication Protocol handler (RFC 27): libzmq asks it, for every new
/// connection to a socket with a ZAP domain, whether to let the peer in. zpubd gives each of
/// its sockets a domain (its role) and enforces it (ZMQ_ZAP_ENFORCE_DOMAIN), so no connection
/// gets past the handshake without an answer from here: fail closed.
///
/// Runs on its own thread with a REP socket on `inproc://zeromq.zap.01`. What other threads
/// touch is its `ZAPShared`: the policies (swapped on reload), the counters (read by STATS)
/// and the mailbox that stops it.
final class ZAPHandler {
    static let endpoint = "inproc://zeromq.zap.01"

    private let socket: Socket
    let shared: ZAPShared
    private var policies: Locked<[String: ZAPPolicy]> { shared.policies }
    private var counters: Locked<ZAPShared.Counters> { shared.counters }
    private let logger: Logger
    /// Denials are logged at most this often per second; the rest are summed up.
    private static let logsPerSecond = 10
    private var logWindowStart: UInt64 = 0
    private var logsInWindow = 0
    private var suppressed = 0

    init(context: Context, policies: [String: ZAPPolicy], logger: Logger) throws {
        socket = try Socket(context, type: .rep)
        try socket.setOption(.linger, 0)
        try socket.bind(Self.endpoint)
        self.shared = ZAPShared(policies: policies)
        self.logger = logger
    }

    /// Closes the socket of a handler that never ran (start-up failed).
    func close() { socket.close() }

    func run() {
        var poller = Poller()
        let socketIndex = poller.add(socket)
        let mailboxIndex = poller.add(fileDescriptor: shared.mailbox.fileDescriptor)
        while true {
            guard (try? poller.poll(timeoutMilliseconds: 1_000)) != nil else { break }
            if poller.isReadable(mailboxIndex) && !shared.mailbox.take().isEmpty { break }
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

    /// The reply to one ZAP request (the decision is `ZAPDecision`'s); counts and logs it.
    func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
        guard let request = ZAPRequest(frames: frames) else { return ZAPDecision.malformedReply(to: frames) }
        switch ZAPDecision.decide(request, policies: policies.withLock { $0 }) {
        case .denied(let reason):
            counters.withLock { $0.denied[request.domain, default: 0] &+= 1 }
            logDenial(
                "denied a connection to \(request.domain): \(reason)",
                metadata: [
                    "socket": "\(request.domain)", "peer": "\(request.address.isEmpty ? "(local)" : request.address)",
                    "mechanism": "\(request.mechanism)", "error": "\(reason)",
                ])
            return ZAPDecision.reply(requestID: request.requestID, code: "400", text: reason)
        case .allowed(let curveKey):
            counters.withLock { $0.allowed[request.domain, default: 0] &+= 1 }
            let user = curveKey.flatMap { CurveKey(bytes: $0)?.z85 } ?? ""
            return ZAPDecision.reply(requestID: request.requestID, code: "200", text: "OK", user: user)
        }
    }

    /// A flood of garbage connections must not become a flood of log lines.
    private func logDenial(_ message: String, metadata: Logger.Metadata) {
        let now = SystemClock.monotonicNanoseconds()
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
        guard suppressed > 0, force || SystemClock.monotonicNanoseconds() &- logWindowStart >= 1_000_000_000 else {
            return
        }
        logger.warning("\(suppressed) more connections denied (not logged one by one)")
        suppressed = 0
    }
}

/// The ZAP handler's side that other threads use: the reload swaps the policies, STATS reads
/// the counters, shutdown posts to the mailbox.
final class ZAPShared: Sendable {
    struct Counters: Sendable {
        var allowed: [String: UInt64] = [:]
        var denied: [String: UInt64] = [:]
    }

    let policies: Locked<[String: ZAPPolicy]>
    let counters = Locked(Counters())
    let mailbox = Mailbox<Bool>()

    init(policies: [String: ZAPPolicy]) {
        self.policies = Locked(policies)
    }

    func update(_ newPolicies: [String: ZAPPolicy]) {
        policies.withLock { $0 = newPolicies }
    }

    var snapshot: Counters { counters.withLock { $0 } }
}
