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
        ioThreads: Int32 = 1, highWaterMarks: HighWaterMarks = HighWaterMarks(), control controlEndpoint: String? = nil
    ) throws {
        let context = try Context(ioThreads: ioThreads)
        let frontend = try Socket(context, type: frontendType)
        let backend = try Socket(context, type: frontendType == .pull ? .pub : .xpub)
        try frontend.setOption(.receiveHighWaterMark, highWaterMarks.receive)
        if frontendType == .xsub { try frontend.setOption(.sendHighWaterMark, 0) }
        try backend.setOption(.sendHighWaterMark, highWaterMarks.send)
        // Bound first: once the data ports accept connections, the control port does too.
        let control = try controlEndpoint.map { try HoldControl(context, binding: $0) }
        try frontend.bind(frontendEndpoint)
        try backend.bind(backendEndpoint)
        guard let control else { return try proxy(frontend: frontend, backend: backend) }
        // Held by ending the proxy (TERMINATE) and calling it again: a paused zmq_proxy_steerable
        // keeps polling, and with messages waiting it would spin instead of holding still.
        while try proxySteerable(frontend: frontend, backend: backend, control: control.socket) {
            try control.held()
        }
    }
}

/// The baselines' queue sizes: zpubd's defaults, or 0 (unlimited) for the backlog measurement.
struct HighWaterMarks: Sendable {
    /// The ingest socket's receive HWM.
    var receive: Int32 = 10_000
    /// The outgoing (XPUB or PUB) socket's send HWM.
    var send: Int32 = 10_000
}

/// The baseline's side of `ForwarderHold` (zpub-bench saturated): a PAIR that takes TERMINATE
/// (stop forwarding, answered with HELD once nothing is read any more) and RESUME (answered
/// with RUNNING just before forwarding starts again). TERMINATE is libzmq's own word, which
/// `zmq_proxy_steerable` acts on by itself; only these two are ever sent, because libzmq 4.3.4's
/// proxy aborts on a command it does not know.
struct HoldControl {
    static let hold = "TERMINATE"
    static let resume = "RESUME"
    let socket: Socket

    init(_ context: Context, binding endpoint: String) throws {
        socket = try Socket(context, type: .pair)
        try socket.setOption(.linger, 0)
        try socket.bind(endpoint)
    }

    /// Answers HELD, then waits, reading nothing else, until RESUME comes.
    func held() throws {
        try socket.send(text: "HELD")
        while let frames = try socket.receiveFrames(), frames != [Array(Self.resume.utf8)] {}
        try socket.send(text: "RUNNING")
    }
}
