import ArgumentParser
import ZPubCore
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pub",
        abstract: "Publish a message: TOPIC is the first frame, each MESSAGE one more frame.",
        discussion: """
            With no MESSAGE, reads standard input and publishes one message per line \
            (TOPIC, line).

            By default PUSHes to the broker's PULL socket, which queues while the broker \
            is busy; --pub PUBlishes to its XSUB socket instead.
            """
    )

    @Argument(help: "The topic (first frame).")
    var topic: String

    @Argument(help: "Payload frames; none: one message per line of standard input.")
    var message: [String] = []

    @Flag(name: .long, help: "PUSH to the PULL socket (default).")
    var push = false

    @Flag(name: .long, help: "PUB to the XSUB socket.")
    var pub = false

    @Option(
        name: [.customShort("e"), .long],
        help: ArgumentHelp(
            "The endpoint to send to (default: the PULL or XSUB default); repeat it for both brokers of a pair: messages go to the one that is active.",
            valueName: "endpoint"))
    var endpoint: [String] = []

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Give up if the broker cannot be reached within this many milliseconds.", valueName: "ms"))
    var timeout = 3_000

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "With --pub: wait this long after connecting, so the broker's subscriptions arrive first.", valueName: "ms")
    )
    var settle = 300

    @OptionGroup var curve: CurveOptions

    func validate() throws {
        if push && pub { throw ValidationError("--push and --pub exclude each other") }
        try Milliseconds.check(timeout, "--timeout")
        // A minute at most: it is slept in microseconds, in 32 bits.
        try Milliseconds.check(settle, "--settle", maximum: 60_000)
    }

    func run() throws {
        try reportingErrors {
            let targets =
                endpoint.isEmpty
                ? [pub ? BrokerConfiguration.Defaults.xsubEndpoints[0] : BrokerConfiguration.Defaults.pullEndpoints[0]]
                : endpoint
            let target = targets.joined(separator: " or ")
            let context = try Context()
            defer { context.terminate() }
            let socket = try Socket(context, type: pub ? .pub : .push)
            defer { socket.close() }
            // Deliver what was queued, but never hang at exit if the broker went away.
            try socket.setOption(.linger, Int32(timeout))
            if !pub {
                // Block sends until a connection exists, with a deadline, so that a broker that
                // is not there is reported instead of silently queued for. With both brokers of a
                // pair, only the active one listens: messages go there and nowhere else.
                try socket.setOption(.immediate, 1)
                try socket.setOption(.sendTimeout, Int32(timeout))
            }
            try curve.apply(to: socket)
            let watch = try ConnectionWatch(
                socket, context: context, endpoints: targets, usingCurve: curve.serverKey != nil)
            defer { watch.close() }
            for target in targets { try socket.connect(target, option: "--endpoint") }
            /// Why nothing got through within the timeout: a failed handshake if there was one.
            func unreachable() -> CLIError {
                let why =
                    watch.failure().map { ": \($0)" } ?? "; is it running? (start it with `zpubd`, or give --endpoint)"
                return CLIError("could not reach zpubd at \(target) within \(timeout) ms\(why)")
            }
            if pub {
                // PUB drops what it sends while nothing is connected: without this, a broker
                // that is not there got the messages "sent" and zpub exited 0.
                guard try watch.waitUntilConnected(timeoutMilliseconds: timeout) else { throw unreachable() }
                usleep(UInt32(settle) * 1_000)
            }

            func send(_ frames: [[UInt8]]) throws {
                guard try socket.send(frames: frames) else { throw unreachable() }
            }
            let topicFrame = Array(topic.utf8)
            if !message.isEmpty {
                try send([topicFrame] + message.map { Array($0.utf8) })
            } else {
                while let line = readLine(strippingNewline: true) {
                    try send([topicFrame, Array(line.utf8)])
                }
            }
        }
    }
}
