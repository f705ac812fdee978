import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// Why the broker could not start or apply a configuration; each says what to do about it.
public struct BrokerError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable {
        case bindFailed, socketSetupFailed, threadFailed
        /// The state directory or the history in it cannot be used (`exitStatus` says how).
        case stateUnusable
        /// Not a failure: a reload's value that only what is bound from now on gets (libzmq
        /// keeps a bound endpoint's options); it is in force elsewhere, not there.
        case keptByBoundEndpoints
        /// Not a failure either: a reload's value in force, with something sized for it only
        /// at start (XSUB's queue for `max_subscriptions`) until a restart.
        case keptUntilRestart

        /// A note of what waits for a restart, not a failure of the reload.
        public var isNotApplied: Bool { self == .keptByBoundEndpoints || self == .keptUntilRestart }
    }

    public let code: Code
    public let message: String
    /// The endpoint concerned, if any (a structured field in the journal).
    public let endpoint: String?
    /// The exit status zpubd should end with (sysexits), when not the usual 1.
    public let exitStatus: Int32?
    /// The `errno` libzmq reported, when it did.
    let systemError: Int32?

    init(code: Code, message: String, endpoint: String? = nil, exitStatus: Int32? = nil, systemError: Int32? = nil) {
        self.code = code
        self.message = message
        self.endpoint = endpoint
        self.exitStatus = exitStatus
        self.systemError = systemError
    }

    public var description: String { message }

    static func bindFailed(role: BrokerSocketRole, endpoint: String, error: ZMQError) -> BrokerError {
        BrokerError(
            code: .bindFailed,
            message:
                "cannot bind the \(role.rawValue) socket to \(endpoint): \(error.reason)\(hint(for: error.code, endpoint: endpoint, setting: "the config file (or with --\(role.rawValue) at start)"))",
            endpoint: endpoint, systemError: error.code
        )
    }

    /// An ipc endpoint whose socket file another process serves (`IPCSocketFile`); told as a
    /// port in use is, and so retried as one while this broker's other socket lets it go.
    static func ipcFileServed(role: BrokerSocketRole, endpoint: String) -> BrokerError {
        BrokerError(
            code: .bindFailed,
            message:
                "cannot bind the \(role.rawValue) socket to \(endpoint): another process (another zpubd?) accepts connections on that socket file, and binding would take it over silently (libzmq removes the file first): stop that process, or choose another path in the config file (or with --\(role.rawValue) at start)",
            endpoint: endpoint, systemError: EADDRINUSE)
    }

    /// A reload's bind that failed because the port is this broker's own, bound on another
    /// address (`bound`: the endpoints its sockets hold, as bound): the usual hint blamed
    /// "another process (another zpubd?)" for a reload that widened 127.0.0.1:P to *:P.
    func naming(portHeldIn bound: [String]) -> BrokerError {
        // An ipc socket file this broker serves under another spelling (a symbolic link, ./):
        // `IPCSocketFile` found it served, by this zpubd.
        if systemError == EADDRINUSE, let endpoint, let file = Endpoint.ipcFile(endpoint),
            let holder = bound.first(where: { $0 != endpoint && Endpoint.ipcFile($0) == file })
        {
            return BrokerError(
                code: code,
                message:
                    "cannot bind \(endpoint): this zpubd serves that socket file itself, as \(holder), and a reload binds the endpoints it adds before it unbinds those it removes (unbinding \(holder) would then delete the file); change it in two reloads (first without \(holder), then with \(endpoint)), or restart",
                endpoint: endpoint, systemError: systemError)
        }
        guard systemError == EADDRINUSE, let endpoint, let port = Self.tcpPort(of: endpoint),
            let holder = bound.first(where: { $0 != endpoint && Self.tcpPort(of: $0) == port })
        else { return self }
        return BrokerError(
            code: code,
            message:
                "cannot bind \(endpoint): this zpubd holds its port itself, on \(holder), and a reload binds the endpoints it adds before it unbinds those it removes (so that one that cannot be bound costs nothing); change it in two reloads (first without \(holder), then with \(endpoint)), or restart",
            endpoint: endpoint, systemError: systemError)
    }

    private static func tcpPort(of endpoint: String) -> Substring? {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return nil }
        return endpoint[endpoint.index(after: colon)...]
    }

    /// The pair's own endpoint (`[ha] bind`) could not be bound.
    static func pairBindFailed(endpoint: String, error: ZMQError) -> BrokerError {
        BrokerError(
            code: .bindFailed,
            message:
                "cannot bind the pair endpoint \(endpoint) ([ha] bind): \(error.reason)\(hint(for: error.code, endpoint: endpoint, setting: "[ha] bind (or with --ha-bind at start)"))",
            endpoint: endpoint, systemError: error.code)
    }

    /// What to do about a failed bind; `setting` is where the endpoint is chosen.
    private static func hint(for code: Int32, endpoint: String, setting: String) -> String {
        switch code {
        case EADDRINUSE:
            // A port in the ephemeral range may also be a connection's local port, with
            // nothing listening (a walkthrough blamed a listener that was not there).
            endpoint.hasPrefix("tcp://")
                ? "; the port is taken: another process (another zpubd?) is listening there (`ss -ltnp` shows which), or a connection took it as its local port (ports in net.ipv4.ip_local_port_range): stop that process, or choose another endpoint in \(setting)"
                : "; another process (another zpubd?) is listening there: stop it, or choose another endpoint in \(setting)"
        case EACCES:
            endpoint.hasPrefix("ipc://")
                ? "; the directory of the socket file is not writable by this user"
                : "; ports below 1024 need privileges: choose a higher port"
        case ENOENT:
            "; the directory of the ipc socket file does not exist: create it first"
        case EADDRNOTAVAIL:
            "; no network interface of this machine has that address: bind to one it has (e.g. 127.0.0.1), or to * for all"
        case ENODEV:
            "; no network interface of this machine has that name or address (libzmq binds to a local interface, not a remote host): use one it has (e.g. 127.0.0.1 or eth0), or * for all"
        case EPROTONOSUPPORT:
            "; this libzmq was built without that transport"
        case EINVAL:
            "; libzmq cannot parse the endpoint: check its spelling (e.g. tcp://127.0.0.1:5556)"
        default:
            ""
        }
    }
}

/// What a reload came to.
public enum ReloadOutcome: Sendable {
    /// In force; `problems` are what did not apply (the control socket's endpoints, a thread
    /// that had not applied it yet, an endpoint moved between sockets that could not be bound).
    case applied(problems: [BrokerError])
    /// Nothing changed: an endpoint the file names cannot be bound, or an upstream connected.
    case refused(BrokerError)
}
