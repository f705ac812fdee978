import CZeroMQ

/// Connection events a socket can report through `zmq_socket_monitor`.
public struct SocketEvents: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let connected = SocketEvents(rawValue: UInt16(ZMQ_EVENT_CONNECTED))
    public static let accepted = SocketEvents(rawValue: UInt16(ZMQ_EVENT_ACCEPTED))
    public static let disconnected = SocketEvents(rawValue: UInt16(ZMQ_EVENT_DISCONNECTED))
    public static let handshakeFailedNoDetail = SocketEvents(rawValue: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
    public static let handshakeFailedProtocol = SocketEvents(rawValue: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL))
    public static let handshakeFailedAuth = SocketEvents(rawValue: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))
    public static let handshakeSucceeded = SocketEvents(rawValue: UInt16(ZMQ_EVENT_HANDSHAKE_SUCCEEDED))
    public static let acceptFailed = SocketEvents(rawValue: UInt16(ZMQ_EVENT_ACCEPT_FAILED))
    public static let connectDelayed = SocketEvents(rawValue: UInt16(ZMQ_EVENT_CONNECT_DELAYED))
    public static let connectRetried = SocketEvents(rawValue: UInt16(ZMQ_EVENT_CONNECT_RETRIED))
    /// The monitored socket is gone: closed, and its linger over (libzmq sends it as the
    /// socket is destroyed, the last event of its monitor).
    public static let monitorStopped = SocketEvents(rawValue: UInt16(ZMQ_EVENT_MONITOR_STOPPED))
    /// A listener is up; the event's value is its file descriptor.
    public static let listening = SocketEvents(rawValue: UInt16(ZMQ_EVENT_LISTENING))

    public static let handshakeFailed: SocketEvents = [
        handshakeFailedNoDetail, handshakeFailedProtocol, handshakeFailedAuth,
    ]
}

/// One event read from a monitor socket.
public struct MonitorEvent: Equatable, Sendable {
    public let event: SocketEvents
    /// The event's value: a file descriptor for connected/accepted/disconnected, an errno or a
    /// ZMTP error code for failures.
    public let value: Int32
    /// The endpoint the event concerns, e.g. "tcp://127.0.0.1:5557".
    public let endpoint: String

    public init(event: SocketEvents, value: Int32, endpoint: String) {
        self.event = event
        self.value = value
        self.endpoint = endpoint
    }
}

extension Socket {
    /// Starts publishing `events` of this socket on the PAIR endpoint `inprocEndpoint`;
    /// connect a `.pair` socket there and read them with `readMonitorEvent`.
    public func startMonitor(_ inprocEndpoint: String, events: SocketEvents) throws {
        _ = try zmqCall("monitor \(type) on \(inprocEndpoint)") {
            zmq_socket_monitor(handle, inprocEndpoint, Int32(events.rawValue))
        }
    }

    /// Reads one event from a monitor PAIR socket, or nil if none is waiting.
    public func readMonitorEvent() throws -> MonitorEvent? {
        guard let frames = try receiveFrames(dontWait: true) else { return nil }
        guard frames.count >= 2, frames[0].count >= 6 else { return nil }
        let header = frames[0]
        let event = UInt16(header[0]) | UInt16(header[1]) << 8
        let value = UInt32(header[2]) | UInt32(header[3]) << 8 | UInt32(header[4]) << 16 | UInt32(header[5]) << 24
        return MonitorEvent(
            event: SocketEvents(rawValue: event), value: Int32(bitPattern: value),
            endpoint: String(decoding: frames[1], as: UTF8.self))
    }
}

extension Socket {
    /// Stops the monitor `startMonitor` began.
    public func stopMonitor() throws {
        _ = try zmqCall("stop monitoring \(type)") { zmq_socket_monitor(handle, nil, 0) }
    }
}

/// Values of a `handshakeFailedProtocol` event that a client can act on (zmq.h's
/// `ZMQ_PROTOCOL_ERROR_*`).
public enum ZMTPProtocolError {
    /// A CURVE box that did not open: most likely the wrong server key.
    public static let cryptographic = Int32(ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
    /// One side uses CURVE (or PLAIN) and the other does not.
    public static let mechanismMismatch = Int32(ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
}
