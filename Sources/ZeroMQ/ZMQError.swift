import CZeroMQ

/// An error reported by libzmq: the operation that failed and its `errno`.
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The `errno` value libzmq reported.
    public let code: Int32
    /// What was being done, e.g. `bind tcp://127.0.0.1:5555`.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// libzmq's own text for the error, e.g. "Address already in use".
    public var reason: String { String(cString: zmq_strerror(code)) }

    public var description: String { "\(operation): \(reason)" }

    /// True when the context was terminated: the socket's owner should close it and stop.
    public var isContextTerminated: Bool { code == ETERM }

    /// Captures `zmq_errno()` right after a failed call.
    static func last(_ operation: @autoclosure () -> String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation())
    }
}

/// The one funnel for libzmq calls that return -1 on failure: retries `EINTR`, reports `EAGAIN`
/// as `false` ("would block"), throws a `ZMQError` for everything else. `retryingFirst`: the
/// caller already made the call once and it failed, so `errno` is read before calling again.
@inline(__always)
func zmqCall(_ operation: @autoclosure () -> String, retryingFirst: Bool = false, _ call: () -> Int32) throws -> Bool {
    var failedAlready = retryingFirst
    while true {
        if !failedAlready && call() >= 0 { return true }
        failedAlready = false
        let code = zmq_errno()
        if code == EINTR { continue }
        if code == EAGAIN { return false }
        throw ZMQError(code: code, operation: operation())
    }
}
