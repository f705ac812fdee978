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

/// `zmq_proxy_steerable`: `proxy(frontend:backend:)` with a `control` PAIR that takes libzmq's
/// commands: PAUSE, RESUME, TERMINATE and STATISTICS (the only one answered; so not a REP,
/// which could take no second command). In libzmq 4.3.4 any other command aborts the process
/// (`zmq_assert`), and, built without the draft API (as Debian's is), a paused proxy keeps
/// polling its sockets and spins while messages wait; to hold one still, TERMINATE it and call
/// again: the sockets keep their connections and subscriptions.
///
/// Returns true when TERMINATE ended it, false when the context was terminated; throws for any
/// other failure.
public func proxySteerable(frontend: Socket, backend: Socket, control: Socket) throws -> Bool {
    if zmq_proxy_steerable(frontend.handle, backend.handle, nil, control.handle) == 0 { return true }
    let error = ZMQError.last("zmq_proxy_steerable \(frontend.type) -> \(backend.type)")
    if error.isContextTerminated { return false }
    throw error
}
