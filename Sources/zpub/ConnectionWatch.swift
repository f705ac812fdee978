import Foundation
import ZPubCore
import ZeroMQ

/// What a client socket's connections are doing, read from its monitor and put in words for the
/// person at the terminal. ZeroMQ keeps this to itself: it retries a broker that is not there
/// forever and in silence, and after a refused handshake (a CURVE key the broker does not allow,
/// CURVE on one side only) libzmq 4.3.4 gives that connection up for good, also in silence
/// (measured: one attempt, then nothing for as long as the socket lives). Without this, a wrong
/// endpoint, a wrong key and a quiet topic all looked the same to `zpub sub`: no output.
final class ConnectionWatch {
    /// The monitors' PAIR sockets, to poll beside the watched ones (readable when events wait).
    let monitors: [Socket]
    private let watched: [Socket]
    private let endpoints: [String]
    private let usingCurve: Bool
    /// Endpoints (as libzmq names them in events) with a connection whose handshake succeeded.
    private var connected: Set<String> = []
    /// Endpoints libzmq has given up on.
    private var givenUp: Set<String> = []
    /// Every problem already told, so that a retrying connection does not repeat itself.
    private var told: Set<String> = []
    /// How often each problem was seen since the last connection.
    private var seen: [String: Int] = [:]
    /// The last failed handshake since the last connection.
    private var lastFailure: String?
    /// How long without a connection before saying so.
    let patienceMilliseconds: Int
    /// The endpoint meant, in words, for the sentences that ask whether it was the right one:
    /// a SUB given the broker's PULL port sees a connection and no handshake, and "is that
    /// zpubd's endpoint?" did not say which of its four was needed.
    let expected: String
    /// Since when no connection has been up (monotonic nanoseconds), or nil while one is.
    private var unconnectedSince: UInt64?
    /// Endpoints that had a connection up once.
    private var everConnected: Set<String> = []
    /// The silence was told (its words may have changed since: `reachedWithoutHandshake`).
    private var silenceTold = false
    /// Endpoints where a connection was made (TCP, IPC), its ZeroMQ handshake done or not.
    private var reached: Set<String> = []
    /// Endpoints whose connection failed (refused: nothing listens) and is being retried.
    private var refused: Set<String> = []
    /// Connections up again after one to the same endpoint was lost (a broker restarted, a
    /// network that came back): what was published meanwhile never reached the socket.
    private(set) var reconnections = 0
    /// Connections lost after their handshake. A PUSH with ZMQ_IMMEDIATE, and a publisher,
    /// drop what they had queued for a connection when they lose it.
    private(set) var disconnections = 0
    /// Watched sockets libzmq has destroyed (closed, their linger over).
    private var gone = 0

    /// Starts watching `sockets` as one (a connection up on any of them is a connection up),
    /// which must not have connected yet (events before the monitor starts are not reported).
    /// `endpoints` are the ones they will connect to, all of them.
    /// `noticingRefusals`: also hear each refused connection (`isRefusedEverywhere`), for a
    /// short-lived question only: libzmq reports every retry (each 100-200 ms while nothing
    /// listens), and a monitor whose events go unread blocks libzmq's I/O thread once some
    /// 2,000 wait (its send to the monitor's PAIR blocks): `zpub pub -e A -e B` beside a
    /// standby that binds nothing stopped sending after five minutes, and hung at exit.
    /// `watchingTheEnd`: also hear when libzmq destroys a closed socket
    /// (`waitUntilClosedSocketsAreGone`). Only for a socket closed before the watch: stopping
    /// a monitor sends that event too, and libzmq's send blocks while the monitor's queue is
    /// full of unread events.
    init(
        _ sockets: [Socket], context: Context, endpoints: [String], usingCurve: Bool, patienceMilliseconds: Int = 3_000,
        expected: String = ConnectionWatch.anyDataEndpoint, noticingRefusals: Bool = false,
        watchingTheEnd: Bool = false
    ) throws {
        var events: SocketEvents = [.connected, .handshakeSucceeded, .disconnected, .handshakeFailed]
        if noticingRefusals { events.insert(.connectRetried) }
        if watchingTheEnd { events.insert(.monitorStopped) }
        var monitors: [Socket] = []
        for socket in sockets {
            // Unique per watched socket (inproc names are per context, and a context may hold
            // several).
            let address = "inproc://zpub-connection-watch-\(ObjectIdentifier(socket).hashValue)"
            try socket.startMonitor(
                address, events: events)
            let monitor = try Socket(context, type: .pair)
            try monitor.setOption(.linger, 0)
            try monitor.connect(address)
            monitors.append(monitor)
        }
        self.monitors = monitors
        watched = sockets
        self.endpoints = endpoints
        self.usingCurve = usingCurve
        self.patienceMilliseconds = patienceMilliseconds
        self.expected = expected
        unconnectedSince = SystemClock.monotonicNanoseconds()
    }

    /// Starts watching `socket` (see above).
    convenience init(
        _ socket: Socket, context: Context, endpoints: [String], usingCurve: Bool, patienceMilliseconds: Int = 3_000,
        expected: String = ConnectionWatch.anyDataEndpoint, noticingRefusals: Bool = false,
        watchingTheEnd: Bool = false
    ) throws {
        try self.init(
            [socket], context: context, endpoints: endpoints, usingCurve: usingCurve,
            patienceMilliseconds: patienceMilliseconds, expected: expected, noticingRefusals: noticingRefusals,
            watchingTheEnd: watchingTheEnd)
    }

    static let anyDataEndpoint = "zpubd's endpoint (its PULL, XSUB or XPUB, not another service's port)"

    /// `expected` for a socket that talks to one kind of zpubd's sockets only (ZeroMQ refuses
    /// the others in the handshake, in silence): `ours` is this client's type, `theirs` the
    /// broker's socket it needs.
    static func only(_ theirs: String, for ours: String) -> String {
        let others = ["XPUB", "PULL", "XSUB", "control"].filter { $0 != theirs }
        let article = theirs.hasPrefix("X") ? "an" : "a"
        return
            "zpubd's \(theirs) endpoint (a \(ours) completes the handshake with \(article) \(theirs) only: not its \(others.dropLast().joined(separator: ", ")) or \(others.last!) endpoint, nor another service's port)"
    }

    /// Whether a connection is up (its handshake done), as of the events read so far.
    var isConnected: Bool { !connected.isEmpty }

    /// Waits until a connection is up, libzmq has given every endpoint up, or the time is over;
    /// true in the first case.
    func waitUntilConnected(timeoutMilliseconds: Int) throws -> Bool {
        _ = try readEvents(until: { isConnected || isHopeless }, timeoutMilliseconds: timeoutMilliseconds)
        return isConnected
    }

    /// Reads the monitors' events as they come until `done` holds, or `timeoutMilliseconds`
    /// pass; whether it holds. (A signal does not end the poll early: it goes on waiting.)
    private func readEvents(until done: () -> Bool, timeoutMilliseconds: Int) throws -> Bool {
        let deadline = SystemClock.monotonicNanoseconds() &+ UInt64(max(0, timeoutMilliseconds)) * 1_000_000
        _ = try readEvents()
        while !done() {
            let now = SystemClock.monotonicNanoseconds()
            guard now < deadline else { return false }
            var poller = Poller()
            for monitor in monitors { poller.add(monitor) }
            _ = try poller.poll(timeoutMilliseconds: Int((deadline - now) / 1_000_000) + 1)
            _ = try readEvents()
        }
        return true
    }

    /// True when libzmq has given up every endpoint: nothing will ever arrive.
    var isHopeless: Bool { connected.isEmpty && givenUp.count >= endpoints.count }

    /// True when every endpoint has failed to connect at least once, none ever having
    /// connected, as of the events read so far: nothing listens there now, or the host cannot
    /// be reached (libzmq goes on retrying). A connection lost after it was made is retried
    /// the same way, and is not counted: that broker may be restarting.
    var isRefusedEverywhere: Bool { connected.isEmpty && refused.subtracting(reached).count >= endpoints.count }

    /// The last failed handshake since the last connection, after reading the events waiting:
    /// why a request or a send timed out, when there is more to say than "not there".
    func failure() -> String? {
        _ = try? readEvents()
        return lastFailure
    }

    /// What went wrong, for an error that ends the command: the last failed handshake, or that
    /// no connection has been up for the patience.
    var problem: String? {
        if let lastFailure { return lastFailure }
        return silenceTold ? silence(stillTrying: false) : nil
    }

    /// Reads the events waiting; returns the sentences a person should see now: each failed
    /// handshake once, that no connection has been up for `patienceMilliseconds` (at start, or
    /// since one was lost), and "connected" once something was told.
    func update() throws -> [String] {
        var notices = try readEvents()
        if millisecondsUntilDue == 0 {
            silenceTold = true
            told.insert(silence(stillTrying: false))
            notices.append(silence(stillTrying: true))
        }
        return notices
    }

    /// Milliseconds until `update` may have something to say without an event (for a poll's
    /// timeout), or nil: the silence is told unless a failure already was.
    var millisecondsUntilDue: Int? {
        guard let since = unconnectedSince, told.isEmpty else { return nil }
        let waited = Int((SystemClock.monotonicNanoseconds() &- since) / 1_000_000)
        return max(0, patienceMilliseconds - waited)
    }

    /// That no connection has been up for the patience: a notice while zpub goes on trying, or
    /// the reason of an error that ends it.
    private func silence(stillTrying: Bool) -> String {
        if let unanswered = reachedWithoutHandshake(
            within: "\(patienceMilliseconds / 1000) s", stillTrying: stillTrying)
        {
            return unanswered
        }
        // libzmq resolves a host name when it connects, and retries a failure in silence.
        if let unresolved = endpoints.lazy.compactMap(ControlClient.hostProblem).first {
            return "no connection to \(endpoints.joined(separator: " or ")): \(unresolved)"
        }
        return
            "no connection to \(endpoints.joined(separator: " or ")) for \(patienceMilliseconds / 1000) s\(stillTrying ? "; still trying." : ".") Is zpubd running there? (start it with `zpubd`, or give --endpoint)"
    }

    private func readEvents() throws -> [String] {
        var notices: [String] = []
        for monitor in monitors {
            notices += try readEvents(of: monitor)
        }
        return notices
    }

    private func readEvents(of monitor: Socket) throws -> [String] {
        var notices: [String] = []
        while let event = try monitor.readMonitorEvent() {
            let endpoint = event.endpoint
            if event.event.contains(.connected) {
                reached.insert(endpoint)
            } else if event.event.contains(.connectRetried) {
                refused.insert(endpoint)
            } else if event.event.contains(.handshakeSucceeded) {
                if !everConnected.insert(endpoint).inserted && !connected.contains(endpoint) { reconnections += 1 }
                connected.insert(endpoint)
                givenUp.remove(endpoint)
                unconnectedSince = nil
                if !told.isEmpty { notices.append("connected to \(endpoint)") }
                lastFailure = nil
                silenceTold = false
                told.removeAll()
                seen.removeAll()
            } else if event.event.contains(.monitorStopped) {
                gone += 1
            } else if event.event.contains(.disconnected) {
                if connected.contains(endpoint) { disconnections += 1 }
                connected.remove(endpoint)
                if connected.isEmpty && unconnectedSince == nil {
                    unconnectedSince = SystemClock.monotonicNanoseconds()
                }
            } else if let (failure, final) = describe(event) {
                if final { givenUp.insert(endpoint) }
                lastFailure = failure
                // A hang-up during the handshake is told when it happens again: once alone, it
                // is what precedes a refusal that comes with its reason.
                let times = seen[failure, default: 0] + 1
                seen[failure] = times
                if (final || times > 1) && told.insert(failure).inserted {
                    let sentence = failure.hasSuffix(".") || failure.hasSuffix("?") ? failure : failure + "."
                    notices.append(final ? failure : sentence + " Still trying.")
                }
            }
        }
        return notices
    }

    /// Endpoints that took a connection and completed no ZeroMQ handshake on it, in words, or
    /// nil. A service that speaks first (SSH, SMTP) looks to libzmq like a ZMTP 1.0 peer: a
    /// PUSH with ZMQ_IMMEDIATE sent it messages as if it were zpubd.
    /// In terms of `expected`. As of the events read so far (`failure`, `update`): reading them
    /// here would drop the notices they bring.
    func reachedWithoutHandshake(within time: String, stillTrying: Bool = false) -> String? {
        let unanswered = reached.subtracting(everConnected)
        guard !unanswered.isEmpty, connected.isEmpty else { return nil }
        return
            "\(unanswered.sorted().joined(separator: " and ")) took the connection but completed no ZeroMQ handshake in \(time)\(stillTrying ? "; still trying" : ""). Is that \(expected), and not too busy to answer?"
    }

    /// Once the watched sockets are closed: reads their monitors until libzmq has destroyed
    /// every one (their linger over) or `timeoutMilliseconds` pass; false then. The events of
    /// the linger count: a connection lost while it lasts takes what was still queued for it.
    func waitUntilClosedSocketsAreGone(timeoutMilliseconds: Int) throws -> Bool {
        try readEvents(until: { gone >= watched.count }, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Stops the monitor (before the context closes; a socket closed already stopped its own).
    func close() {
        for socket in watched where !socket.isClosed { try? socket.stopMonitor() }
        for monitor in monitors { monitor.close() }
    }

    /// A failed handshake in words, and whether libzmq has given the endpoint up for it.
    private func describe(_ event: MonitorEvent) -> (String, Bool)? {
        let endpoint = event.endpoint
        if event.event.contains(.handshakeFailedAuth) {
            let status = event.value
            // Without CURVE only the address can be refused: advice about keys misled (a
            // walkthrough: allowed_addresses without loopback, no CURVE anywhere).
            let reason =
                status != 400
                ? "its access check failed (ZAP status \(status)); see zpubd's log"
                : usingCurve
                    ? "its allowed_keys or allowed_addresses do not admit this client's key or address; give --client-key with a key it allows, or connect from an address it allows"
                    : "its allowed_addresses do not admit this client's address; connect from an address it allows, or have allowed_addresses include it"
            return ("zpubd at \(endpoint) refused this client: \(reason) (docs/security.md)", true)
        }
        if event.event.contains(.handshakeFailedProtocol) {
            let reason =
                switch event.value {
                case ZMTPProtocolError.mechanismMismatch:
                    usingCurve
                        ? "it does not use CURVE on this socket; leave out --server-key"
                        : "it requires CURVE on this socket; give --server-key with the broker's public key (docs/security.md)"
                case ZMTPProtocolError.cryptographic:
                    "the CURVE handshake failed; is --server-key this broker's public key?"
                default:
                    "ZMTP protocol error 0x\(String(UInt32(bitPattern: event.value), radix: 16)); is it a ZeroMQ endpoint of zpubd?"
                }
            return ("the handshake with \(endpoint) failed: \(reason)", true)
        }
        if event.event.contains(.handshakeFailedNoDetail) {
            // The broker hung up during the handshake: with CURVE, what a broker does with a
            // HELLO it cannot decrypt, so most likely a server key that is not its own.
            let reason = String(cString: strerror(event.value))
            return (
                usingCurve
                    ? "\(endpoint) closed the connection during the CURVE handshake (\(reason)); is --server-key this broker's public key, and does that socket use CURVE (curve = true in its [security.*] section)? If it does not, leave out --server-key"
                    : "the handshake with \(endpoint) failed (\(reason)); is it \(expected)?",
                false
            )
        }
        return nil
    }
}
