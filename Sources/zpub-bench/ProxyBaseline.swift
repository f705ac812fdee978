import ZeroMQ

/// libzmq's own `zmq_proxy`, in a process of its own like zpubd, with zpubd's default queue
/// sizes: XSUB -> XPUB for PUB producers, PULL -> PUB for PUSH producers.
///
/// Not PULL -> XPUB: in libzmq 4.3.4 that proxy spins at 100% CPU as soon as a subscriber
/// subscribes (the subscription cannot be passed to the PULL, so the XPUB stays readable and
/// zmq_poll returns at once, forever), which on two cores would slow down everything else
/// measured. A PUB filters and fans out with the same code as an XPUB and keeps the
/// subscriptions to itself.
enum ProxyBaseline {
    static func run(
        frontendType: SocketType, frontend frontendEndpoint: String, backend backendEndpoint: String,
        ioThreads: Int32 = 1, sendHighWaterMark: Int32 = 10_000
    ) throws {
        let context = try Context(ioThreads: ioThreads)
        let frontend = try Socket(context, type: frontendType)
        let backend = try Socket(context, type: frontendType == .pull ? .pub : .xpub)
        try frontend.setOption(.receiveHighWaterMark, 10_000)
        if frontendType == .xsub { try frontend.setOption(.sendHighWaterMark, 0) }
        try backend.setOption(.sendHighWaterMark, sendHighWaterMark)
        try frontend.bind(frontendEndpoint)
        try backend.bind(backendEndpoint)
        try proxy(frontend: frontend, backend: backend)
    }
}
