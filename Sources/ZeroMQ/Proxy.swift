import CZeroMQ

/// Runs libzmq's built-in proxy (`zmq_proxy`) between two sockets on the calling thread:
/// everything `frontend` receives goes to `backend` and the other way round, until the context
/// is terminated. The benchmark uses it as the reference a broker is measured against.
///
/// Returns normally when the context is terminated; throws for any other failure.
public func proxy(frontend: Socket, backend: Socket) throws {
    // zmq_proxy only ever returns -1: the errno says whether that was a normal end.
    if zmq_proxy(frontend.handle, backend.handle, nil) < 0 {
        let error = ZMQError.last("zmq_proxy \(frontend.type) -> \(backend.type)")
        if !error.isContextTerminated { throw error }
    }
}
