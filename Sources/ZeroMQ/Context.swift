import CZeroMQ

/// A libzmq context: the I/O threads and the registry of `inproc://` endpoints.
///
/// A context is thread safe. Terminating it makes every blocking call on its sockets fail with
/// `ETERM`; `terminate()` itself waits until every socket is closed.
// Unchecked: libzmq documents zmq_ctx_* as thread safe; the handle is the only state.
public final class Context: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` I/O threads.
    public init(ioThreads: Int32 = 1) throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
        if ioThreads != 1 {
            _ = zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
        }
    }

    /// Sets the maximum number of sockets (`ZMQ_MAX_SOCKETS`); call before creating sockets.
    public func setMaxSockets(_ count: Int32) {
        _ = zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, count)
    }

    /// Makes blocking calls on all sockets of this context return `ETERM`, without waiting.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    /// Terminates the context; blocks until every socket has been closed and lingered.
    public func terminate() {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// libzmq's version as (major, minor, patch).
    public static var libraryVersion: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether libzmq was built with a capability, e.g. "curve", "ipc", "pgm", "draft".
    public static func hasCapability(_ name: String) -> Bool {
        zmq_has(name) != 0
    }
}
