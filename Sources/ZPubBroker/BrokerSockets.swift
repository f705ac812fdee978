import Logging
import Systemd
import ZPubCore
import ZeroMQ

/// The broker's sockets, made, monitored and bound, before any thread runs, in two groups made
/// separately so that each can move to its own thread (`sending`): PULL, XSUB and XPUB go to the
/// forwarding loop (`BrokerSockets`), their monitors to the connection event reader
/// (`MonitorSockets`), the control socket to the control server (`BrokerSockets.makeControl`).
struct BrokerSockets {
    /// One role's socket, the endpoints it is bound to, and (data sockets only) the PAIR socket
    /// that receives its connection events.
    struct Bound {
        let socket: Socket
        let endpoints: BoundEndpoints
        let monitor: Socket?

        /// Closes what was made, without lingering: for a start that failed.
        func close() {
            BrokerSockets.close([socket] + (monitor.map { [$0] } ?? []))
            endpoints.removeSocketFiles()
        }
    }

    let pull: Bound
    let xsub: Bound
    let xpub: Bound

    var monitors: MonitorSockets {
        MonitorSockets(
            all: [(.pull, pull), (.xsub, xsub), (.xpub, xpub)].compactMap { role, bound in
                bound.monitor.map { (role, $0) }
            })
    }

    /// Warns about sockets systemd passed under a name that is no role.
    static func checkAdopted(_ adopted: [ListeningSocket], configuration: BrokerConfiguration, logger: Logger) {
        for socket in adopted where BrokerSocketRole(rawValue: socket.name) == nil {
            logger.warning(
                "ignoring a socket passed by systemd named \"\(socket.name)\"; name them pull, xsub, xpub or control (FileDescriptorName=)"
            )
        }
        // Socket-activated, a role systemd passed nothing for is bound from the configuration,
        // where the socket-activated unit (no network of its own) reaches no client. One socket
        // unit with four names passed "control" four times (systemd names all of one unit's
        // descriptors alike), and zpubd ran, healthy, with no producer or subscriber able to
        // reach it (an audit).
        guard !adopted.isEmpty else { return }
        for role in BrokerSocketRole.allCases
        where !adopted.contains(where: { $0.name == role.rawValue }) && !configuration.endpoints(for: role).isEmpty {
            logger.warning(
                "systemd passed no socket named \(role.rawValue) (it passed \(adopted.map(\.name).joined(separator: ", "))): zpubd binds the configured \(role.rawValue) endpoints itself (\(configuration.endpoints(for: role).joined(separator: ", "))), which under zpubd-activated.service, with no network of its own, no client outside reaches; systemd names every descriptor of one socket unit alike (FileDescriptorName=): give each role a socket unit of its own (\(role == .control ? "zpubd.socket" : "zpubd-\(role.rawValue).socket"))"
            )
        }
    }

    /// The control socket, bound (or on the listening sockets systemd passed for it).
    static func makeControl(
        context: Context, configuration: BrokerConfiguration, serverKey: CurveKey?, adopted: [ListeningSocket],
        registry: EndpointRegistry, logger: Logger
    ) throws -> Bound {
        let bound = try makeOne(
            .control, context: context, configuration: configuration, serverKey: serverKey,
            adopted: adopted.filter { $0.name == BrokerSocketRole.control.rawValue }, logger: logger)
        registry.set(.control, bound.endpoints.actual)
        return bound
    }

    /// Makes and binds the data sockets (or adopts the listening sockets systemd passed for a
    /// role), then connects XSUB to the upstream brokers. Throws, with the endpoint and the
    /// reason, if any of it fails; everything made so far is closed then.
    static func make(
        context: Context, configuration: BrokerConfiguration, serverKey: CurveKey?, adopted: [ListeningSocket],
        registry: EndpointRegistry, logger: Logger
    ) throws -> BrokerSockets {
        var made: [Bound] = []
        func next(_ role: BrokerSocketRole) throws -> Bound {
            let bound = try makeOne(
                role, context: context, configuration: configuration, serverKey: serverKey,
                adopted: adopted.filter { $0.name == role.rawValue }, logger: logger)
            made.append(bound)
            registry.set(role, bound.endpoints.actual)
            return bound
        }
        do {
            let sockets = BrokerSockets(pull: try next(.pull), xsub: try next(.xsub), xpub: try next(.xpub))
            // Upstream brokers: the XSUB socket connects to them as well; libzmq reconnects by
            // itself and replays the subscriptions after every reconnect. A pair's member
            // starts passive, and connects them as it takes over (`ForwardingLoop`).
            let upstreams = configuration.pair.isEnabled ? [] : configuration.upstreamEndpoints
            for endpoint in upstreams {
                do {
                    try sockets.xsub.socket.connect(endpoint)
                } catch let error as ZMQError {
                    throw BrokerError(
                        code: .bindFailed, message: "cannot connect to the upstream \(endpoint): \(error.reason)",
                        endpoint: endpoint)
                }
            }
            return sockets
        } catch {
            for bound in made { bound.close() }
            throw error
        }
    }

    fileprivate static func close(_ sockets: [Socket]) {
        for socket in sockets {
            try? socket.setOption(.linger, 0)
            socket.close()
        }
    }

    /// One role: the socket with its options, its monitor, its endpoints. On failure it closes
    /// what it made itself.
    private static func makeOne(
        _ role: BrokerSocketRole, context: Context, configuration: BrokerConfiguration, serverKey: CurveKey?,
        adopted: [ListeningSocket], logger: Logger
    ) throws -> Bound {
        let socket = try SocketSetup.makeSocket(
            role, context: context, configuration: configuration, serverKey: serverKey)
        if role == .xsub {
            // Tells upstream zpubd brokers to wrap the last values they send as this broker
            // subscribes (`UpstreamValue`), before any connection is made.
            do {
                try socket.setOption(.metadata, string: UpstreamValue.metadata)
            } catch {
                logger.warning(
                    "this libzmq refuses ZMQ_METADATA (\(error)): upstream zpubd brokers send their last values plain as this broker subscribes, and it forwards each as a new message (docs/topologies.md)"
                )
            }
        }
        var monitor: Socket?
        do {
            return try bindOne(
                role, socket: socket, monitor: &monitor, context: context, configuration: configuration,
                adopted: adopted, logger: logger)
        } catch {
            close([socket] + (monitor.map { [$0] } ?? []))
            throw error
        }
    }

    private static func bindOne(
        _ role: BrokerSocketRole, socket: Socket, monitor: inout Socket?, context: Context,
        configuration: BrokerConfiguration, adopted: [ListeningSocket], logger: Logger
    ) throws -> Bound {
        var endpoints = BoundEndpoints(role: role)
        if role != .control {
            // Connection events feed the peer counts and the descriptor guard; the monitor PAIR
            // belongs to the loop.
            let monitorEndpoint = "inproc://zpubd-monitor-\(role.rawValue)"
            try socket.startMonitor(
                monitorEndpoint,
                events: [
                    .accepted, .connected, .disconnected, .handshakeFailed, .connectRetried, .connectDelayed,
                    // With ZAP's count of connections let in: those dropped in silence after it.
                    .handshakeSucceeded,
                    // Not .closed: libzmq 4.3.4 leaks the CLOSED events it emits while the
                    // sockets shut down (LeakSanitizer, 3 x 80 bytes per run).
                    .listening, .acceptFailed,
                ])
            let pair = try Socket(context, type: .pair)
            monitor = pair
            try pair.setOption(.linger, 0)
            try pair.connect(monitorEndpoint)
        }
        do {
            if configuration.pair.isEnabled && (role == .pull || role == .xsub) {
                // One of a pair: producers' endpoints are bound when this broker becomes active
                // (`PairLink`), so that producers connected to both reach only the active one.
            } else if adopted.isEmpty {
                for endpoint in configuration.endpoints(for: role) { try endpoints.bind(endpoint, on: socket) }
            } else {
                for listening in adopted { try endpoints.adopt(listening, on: socket) }
            }
            // Kept out of `endpoints` and the registry: not configuration, and not for CONFIG.
            if let internalEndpoint = InternalEndpoints.endpoint(for: role) { try socket.bind(internalEndpoint) }
        } catch {
            // The files of the endpoints bound before the failure: the socket closes next.
            endpoints.removeSocketFiles()
            throw error
        }
        if role == .control {
            IPCPermissions.apply(configuration.controlIPCMode, to: endpoints.boundHere, logger: logger)
        } else if !configuration.security(for: role).curve {
            for endpoint in endpoints.actual where Endpoint.isMulticast(endpoint) {
                logger.warning(
                    "the \(role.rawValue) socket sends every message in clear to the multicast group \(endpoint): anyone on that network can read them (pgm and epgm carry no ZeroMQ security; docs/performance.md, \"Multicast\")",
                    metadata: ["endpoint": "\(endpoint)"])
            }
            for endpoint in endpoints.actual where !Endpoint.isLoopbackOnly(endpoint) && !Endpoint.isMulticast(endpoint)
            {
                logger.warning(
                    "the \(role.rawValue) socket listens on \(endpoint) without encryption: anyone on that network can connect and read or inject messages; set curve = true in [security.\(role.rawValue)] (docs/security.md)",
                    metadata: ["endpoint": "\(endpoint)"])
            }
        }
        return Bound(socket: socket, endpoints: endpoints, monitor: monitor)
    }
}
