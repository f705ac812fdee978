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
            (TOPIC, line), byte for byte (binary lines too; the line's end, \\n or \\r\\n, is not \
            part of it); --file publishes a whole file (or - for standard input) as one payload \
            frame.

            By default PUSHes to the broker's PULL socket, which queues while the broker \
            is busy; --pub PUBlishes to its XSUB socket instead.
            """
    )

    @Argument(help: "The topic (first frame).")
    var topic: String

    @Argument(help: "Payload frames; none: one message per line of standard input.")
    var message: [String] = []

    @Option(
        name: [.customShort("f"), .long],
        help: ArgumentHelp(
            "Publish this file's bytes as one payload frame (- reads all of standard input).", valueName: "path"))
    var file: String?

    @Flag(name: .long, help: "PUSH to the PULL socket (default).")
    var push = false

    @Flag(name: .long, help: "PUB to the XSUB socket.")
    var pub = false

    @Option(
        name: [.customShort("e"), .long],
        help: ArgumentHelp(
            "The endpoint to send to (default: $ZPUB_PULL, or $ZPUB_XSUB with --pub, each one or more separated by spaces, else the PULL or XSUB default); repeat it for both brokers of a pair: messages go to the one that is active.",
            valueName: "endpoint"))
    var endpoint: [String] = []

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Give up if the broker cannot be reached, or takes no message, within this many milliseconds. Messages still queued when zpub gives up, or at the end, get as long again to go out before it exits (and it says if some did not).",
            valueName: "ms"))
    var timeout = 3_000

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "The largest frame to send, in bytes (default: the broker's max_message_size, asked of its control endpoint when zpub knows it, else 16 MiB). zpubd drops the connection, and the message, of a sender of a larger frame, so zpub refuses it instead.",
            valueName: "bytes"))
    var maxSize: Int?

    // Optional: given or not decides whether zpub must be told why it could not ask.
    @Option(
        name: [.customShort("c"), .customLong("control")],
        help: ArgumentHelp(
            "The broker's control endpoint, asked for its max_message_size before sending (default: $ZPUB_CONTROL, or tcp://127.0.0.1:5555 when the broker's endpoint is the default one). Not asked with --max-size, nor with --endpoint unless --control is given, nor with $ZPUB_PULL or $ZPUB_XSUB unless $ZPUB_CONTROL is set: that may be another broker's.",
            valueName: "endpoint"))
    var givenControl: String?

    @Option(
        name: .customLong("settle"), parsing: .unconditional,
        help: ArgumentHelp(
            "With --pub: wait up to this long after connecting for the broker's subscription that covers TOPIC (a publisher drops what no subscription wants); sending starts as soon as it comes (default 300).",
            valueName: "ms")
    )
    var givenSettle: Int?
    private var settle: Int { givenSettle ?? 300 }

    @OptionGroup var curve: CurveOptions

    /// Reads the subscriptions the broker's XSUB sends (a byte 1 and the prefix; 0 for an
    /// unsubscribe) until one covers `topic`, for up to `settle` ms: false when none did.
    private func waitForSubscription(covering topic: [UInt8], on socket: Socket) throws -> Bool {
        let deadline = SystemClock.monotonicNanoseconds() &+ UInt64(settle) * 1_000_000
        while true {
            let now = SystemClock.monotonicNanoseconds()
            guard now < deadline else { return false }
            let left = Int((deadline - now + 999_999) / 1_000_000)
            guard let frames = try socket.receiveFrames(timeoutMilliseconds: left) else { return false }
            guard let frame = frames.first, frame.first == 1 else { continue }
            let prefix = frame.dropFirst()
            if topic.starts(with: prefix) { return true }
        }
    }

    func validate() throws {
        if push && pub { throw ValidationError("--push and --pub exclude each other") }
        try EndpointArgument.check(endpoint, "--endpoint")
        if file != nil && !message.isEmpty { throw ValidationError("--file and MESSAGE frames exclude each other") }
        // Before any connection: a missing file was reported as a broker not running (after
        // --timeout) when none was, and as exit 1 where --prefixes-from's is 64.
        if let file, file != "-", let problem = Self.unreadable(file) { throw ValidationError("--file: \(problem)") }
        if let maxSize, maxSize < 1 { throw ValidationError("--max-size must be at least 1") }
        try EndpointArgument.check(givenControl.map { [$0] } ?? [], "--control")
        // 0 is no time for the broker's handshake: every publish failed, "not zpubd's endpoint?".
        try Milliseconds.check(timeout, "--timeout", minimum: 1)
        // A minute at most: it is slept in microseconds, in 32 bits.
        try Milliseconds.check(settle, "--settle", maximum: 60_000)
        // A PUSH is not dropped for want of a subscription: there is nothing to wait for, and
        // the option was ignored in silence (an audit).
        if givenSettle != nil && !pub {
            throw ValidationError("--settle is for --pub (a PUSH waits for no subscription)")
        }
        // zpubd drops a producer's message on its own topics whole (counted as internal):
        // zpub sent it and exited 0 (an audit).
        if topic.utf8.starts(with: BrokerState.internalPrefix) {
            throw ValidationError(
                "topic '\(topic)' is under $zpub/, which zpubd keeps for its own messages: it drops such a message; pick another topic"
            )
        }
    }

    func run() throws {
        try reportingErrors {
            let (targets, source) = dataEndpoints(
                given: endpoint, variable: pub ? "ZPUB_XSUB" : "ZPUB_PULL",
                fallback: pub ? BrokerConfiguration.Defaults.xsubEndpoints : BrokerConfiguration.Defaults.pullEndpoints)
            let target = targets.joined(separator: " or ")
            let context = try Context()
            // Closed at the end of a publish that went through, to see how long the linger took.
            var closed = false
            defer { if !closed { context.terminate() } }
            // With --pub an XPUB, which publishes as a PUB does and also hears the broker's
            // subscriptions: sending starts once the one that covers TOPIC has come.
            let socket = try Socket(context, type: pub ? .xpub : .push)
            defer { if !closed { socket.close() } }
            // Deliver what was queued, but never hang at exit if the broker went away.
            try socket.setOption(.linger, Int32(timeout))
            if !pub {
                // Block sends until a connection exists, with a deadline, so that a broker that
                // is not there is reported instead of silently queued for. With both brokers of a
                // pair, only the active one listens: messages go there and nowhere else.
                try socket.setOption(.immediate, 1)
            } else {
                // A publisher drops what its queue has no room for: lines piped faster than the broker
                // reads them were lost with exit 0 (37,802 of 300,000 in one run). It waits now,
                // up to the timeout, and says so if the broker does not take them.
                try socket.setOption(.xpubNoDrop, 1)
            }
            try socket.setOption(.sendTimeout, Int32(timeout))
            try curve.apply(to: socket)
            let watch = try ConnectionWatch(
                socket, context: context, endpoints: targets, usingCurve: curve.serverKey != nil,
                expected: pub
                    ? ConnectionWatch.only("XSUB", for: "publisher (--pub)")
                    : ConnectionWatch.only("PULL", for: "PUSH"),
                watchingTheEnd: true
            )
            defer { if !closed { watch.close() } }
            for target in targets { try socket.connect(target, option: source) }
            /// Why nothing got through within the timeout: a failed handshake if there was one.
            func unreachable() -> CLIError {
                let why =
                    watch.failure().map { ": \($0)" }
                    ?? watch.reachedWithoutHandshake(within: "\(timeout) ms").map { ": \($0)" }
                    ?? targets.lazy.compactMap(ControlClient.hostProblem).first.map { ": \($0)" }
                    ?? "; is it running? (start it with `zpubd`, or give --endpoint; the standby of a pair binds no producers' endpoint: give both brokers', -e A -e B)"
                return CLIError("could not reach zpubd at \(target) within \(timeout) ms\(why)")
            }
            // A ZeroMQ handshake first: PUB drops what it sends while nothing is connected (a
            // broker that is not there got the messages "sent", exit 0), and a PUSH with
            // ZMQ_IMMEDIATE takes any peer that speaks first for a ZMTP 1.0 one (an SSH or
            // SMTP server given by mistake got the message, exit 0).
            guard try watch.waitUntilConnected(timeoutMilliseconds: timeout) else { throw unreachable() }
            if pub {
                if try !waitForSubscription(covering: Array(topic.utf8), on: socket) {
                    Output.error(
                        "no subscription covering '\(topic)' reached this publisher within --settle (\(settle) ms): zpubd forwards the prefixes its subscribers want, so what is sent now may reach no one"
                    )
                }
            }

            let limit = largestFrame(
                control: ControlEndpoint.ofBroker(
                    given: givenControl, endpointsGiven: !endpoint.isEmpty, dataEndpoints: targets,
                    defaults: pub
                        ? BrokerConfiguration.Defaults.xsubEndpoints : BrokerConfiguration.Defaults.pullEndpoints))

            var sent = 0
            // A lost connection is told when it happens (a long pipe across a broker's restart),
            // looked for at most every 100 ms while sending.
            var lossesTold = 0
            var nextLook = SystemClock.monotonicNanoseconds() &+ 100_000_000
            /// Tells connections lost since the last look, while zpub sends on; false if there
            /// were none. The end tells its own (`lossAtTheEnd`).
            @discardableResult
            func tellLosses() -> Bool {
                for notice in (try? watch.update()) ?? [] { Output.error(notice) }
                guard lossesTold < watch.disconnections else { return false }
                lossesTold = watch.disconnections
                let what =
                    pub
                    ? "a publisher (--pub) drops what it sends while no connection is up; zpub goes on, and exits 1 at the end"
                    : "those still queued here for it, if there were any, were dropped, and zpub cannot tell which; it sends on once the connection is back (waiting up to --timeout, \(timeout) ms)"
                Output.error(
                    "lost the connection to zpubd at \(target) after \(sent) message\(sent == 1 ? "" : "s") (zpubd stopped, restarted or failed over?): \(what)"
                )
                return true
            }
            func send(_ frames: [[UInt8]]) throws {
                if let large = frames.first(where: { $0.count > limit.bytes }) {
                    throw CLIError(
                        "a frame of \(large.count) bytes is larger than \(limit.source) (\(sent) messages sent before): zpubd drops the connection, and the message, of a sender of a frame over its max_message_size; \(limit.advice)"
                    )
                }
                let now = SystemClock.monotonicNanoseconds()
                if now >= nextLook {
                    nextLook = now &+ 100_000_000
                    tellLosses()
                }
                // Tried without waiting first: a send that must wait (the connection down, or
                // the broker's queue full) tells a loss before it waits, however recent.
                if try !socket.send(frames: frames, dontWait: true) {
                    tellLosses()
                    guard try socket.send(frames: frames) else { throw notTaken() }
                }
                sent += 1
            }
            /// Why a send waited --timeout in vain.
            func notTaken() -> CLIError {
                _ = try? watch.update()
                if !watch.isConnected && watch.disconnections > 0 {
                    // It was reached: "could not reach ... is it running? start it" misled.
                    return CLIError(
                        "lost the connection to zpubd at \(target) after \(sent) message\(sent == 1 ? "" : "s"), and it did not come back within --timeout (\(timeout) ms): is zpubd still running (`zpub health`)? Those still queued here for it were dropped, and zpub cannot tell which"
                    )
                }
                guard watch.isConnected else { return unreachable() }
                // Connected, but the broker took nothing more: not "is it running?".
                return CLIError(
                    "zpubd at \(target) took no message for \(timeout) ms (\(sent) handed over before, of which those still queued here are lost if it takes none in the next \(timeout) ms): it is paused (`zpub resume`), or its queue is full because it cannot keep up; send more slowly, or give a longer --timeout"
                )
            }
            let topicFrame = Array(topic.utf8)
            if let file {
                try send([topicFrame, try Self.contents(of: file)])
            } else if !message.isEmpty {
                try send([topicFrame] + message.map { Array($0.utf8) })
            } else {
                // A person at a terminal who gave no MESSAGE: say what zpub waits for.
                if isatty(0) == 1 {
                    Output.error("reading lines from standard input, one message each (Ctrl-D ends)")
                }
                var lines = StandardInputLines()
                while true {
                    let line: [UInt8]?
                    do {
                        line = try lines.next()
                    } catch let error as CLIError {
                        // Which lines went: the ones before it, each a message.
                        throw CLIError("\(error.description) (\(sent) messages sent before)")
                    }
                    guard let line else { break }
                    try send([topicFrame, line])
                }
                // Exit 0 said nothing of it (a walkthrough): an empty pipe may be a mistake.
                if sent == 0 { Output.error("standard input was empty: no message sent") }
            }
            // What is still queued here goes out while the socket lingers, for at most --timeout;
            // whatever the broker has not taken by then (paused, or its queue full) is dropped
            // when the context ends, and libzmq says nothing of it: 267 of 14,500 lines piped to
            // a paused broker were lost with exit 0. Only how long the linger took tells: the
            // linger's timer ends it no sooner than --timeout, an emptied queue at once. A
            // connection lost while lingering (the broker stopped, or failed over) takes its
            // queue with it at once, and the linger ends early: the monitor tells that one (it
            // was exit 0 too), and a loss while sending the same way.
            closed = true
            // Lost since the last look: within 100 ms of the last sends, which may still have
            // been queued for it.
            let toldWhileSending = lossesTold
            _ = try? watch.update()
            let lostBeforeClose = watch.disconnections
            let start = SystemClock.monotonicNanoseconds()
            socket.close()
            // The monitor's last event comes as libzmq destroys the socket, its linger over.
            _ = try? watch.waitUntilClosedSocketsAreGone(timeoutMilliseconds: timeout + 1_000)
            watch.close()
            context.terminate()
            if watch.disconnections > toldWhileSending {
                // While the socket still held the last messages (it was not yet destroyed), or
                // just after they were sent.
                throw CLIError(
                    "lost the connection to zpubd at \(target) while the last messages waited to go out (zpubd stopped, was killed or failed over?): some of the \(sent) sent may not have arrived, and zpub cannot tell which. Send the last ones again once zpubd is back, if the receivers can take a message twice."
                )
            }
            if pub && lostBeforeClose > 0 {
                throw CLIError(
                    "lost the connection to zpubd at \(target) while zpub sent (zpubd stopped, restarted or failed over?): a publisher (--pub) drops what it sends while no connection is up, so some of the \(sent) sent may not have arrived, and zpub cannot tell which"
                )
            }
            // A PUSH's connection lost while sending was told then (`tellLosses`), and is not
            // an error: most often nothing was queued for it (a broker restarted under a slow
            // pipe lost nothing in 6 of 8 walkthrough runs), and zpub cannot tell.
            let lingered = SystemClock.monotonicNanoseconds() &- start
            if lingered >= UInt64(timeout) * 1_000_000 {
                throw CLIError(
                    "zpubd at \(target) did not take all of the last messages within --timeout (\(timeout) ms): of the \(sent) handed over, those still queued here were dropped at exit (zpub cannot tell how many). Is it paused (`zpub resume`)? Send the last ones again, or give a longer --timeout"
                )
            }
        }
    }

    /// The largest frame the broker takes, and where that figure comes from (for the error
    /// that refuses a larger one). A PUSH has no reply, and libzmq tells neither side why it
    /// closed a connection: a frame over the broker's `max_message_size` was lost with exit 0
    /// whenever the broker's limit was below zpub's default. So zpub asks, as a NATS client
    /// reads `max_payload` from the server's INFO. The control endpoint asked is the data
    /// endpoints' broker's (`ControlEndpoint.ofBroker`); with none known, nothing is asked.
    private func largestFrame(control: ControlEndpoint?) -> (bytes: Int, source: String, advice: String) {
        let advice = "raise both if the broker's allows it"
        let fallback = BrokerConfiguration.Defaults.maxMessageSize
        // Not "--max-size (16777216)" to someone who gave no --max-size (an audit).
        let fallbackSource = "zpub's default --max-size (\(fallback)), the broker's not asked"
        let fallbackAdvice = "give --max-size if the broker takes larger frames (-c asks it)"
        if let maxSize { return (maxSize, "--max-size (\(maxSize))", advice) }
        guard let control else { return (fallback, fallbackSource, fallbackAdvice) }
        // One named (-c, $ZPUB_CONTROL) must answer, or zpub says so; the default need not.
        let named = control.source != .builtIn
        var client = ControlClient(control, timeoutMilliseconds: timeout, curve: curve)
        // The control endpoint may have no broker behind it (the default one, for a zpubd
        // started with others; a pair's stopped half): the publish goes on unasked once the
        // connection is refused, or after a short wait for it, not after --timeout each time.
        client.connectTimeoutMilliseconds = min(timeout, 250)
        client.givingUpWhenRefused = true
        do {
            let (reply, _) = try client.request("CONFIG", as: MaxMessageSizeReply.self)
            // With CURVE, libzmq checks the encrypted frame: the payload and 33 bytes of the
            // MESSAGE command (its name, nonce, MAC and flags; libzmq's curve_mechanism_base).
            let bytes = reply.configuration.maxMessageSize - (curve.serverKey != nil ? 33 : 0)
            return (
                bytes, "zpubd's max_message_size (\(bytes), asked of \(control.endpoint))",
                "send it in smaller frames, or raise max_message_size in zpubd's configuration"
            )
        } catch {
            if named {
                Output.error(
                    "could not ask zpubd for its max_message_size (\(error)); sending frames up to \(fallback) bytes (--max-size): one over the broker's limit is lost with the connection"
                )
            }
            return (fallback, fallbackSource, fallbackAdvice)
        }
    }

    /// Why `path` cannot be published with --file, or nil when it looks readable. Not opened
    /// here: a named pipe's writer would see its reader come and go.
    static func unreadable(_ path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0, access(path, R_OK) == 0 else {
            return
                "cannot read \(path): \(String(cString: strerror(errno))); give a readable file, or - for standard input"
        }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            return "\(path) is a directory; give a file, or - for standard input"
        }
        return nil
    }

    /// A file's bytes (`-`: all of standard input), or an error that names the file.
    static func contents(of path: String) throws -> [UInt8] {
        let descriptor = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CLIError("cannot read \(path): \(String(cString: strerror(errno))); give a readable file to --file")
        }
        defer { if descriptor != 0 { close(descriptor) } }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            bytes += buffer[..<count]
        }
    }
}

/// Standard input as lines of bytes, each without its "\n" (or "\r\n"): a line is published as
/// it is, where `readLine` decoded it as UTF-8 and replaced what was not (a binary byte 0xff
/// arrived as EF BF BD, with exit 0).
struct StandardInputLines {
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private var pending: [UInt8] = []
    private var start = 0
    /// Where the search for the next newline goes on: a long line is not scanned again with
    /// every read (which made it quadratic).
    private var scanned = 0
    private var atEnd = false

    mutating func next() throws -> [UInt8]? {
        while true {
            if let newline = pending[max(start, scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(pending[start..<newline])
                start = newline + 1
                scanned = start
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return line
            }
            if atEnd {
                guard start < pending.count else { return nil }
                defer { start = pending.count }
                return Array(pending[start...])
            }
            scanned = pending.count
            // Keep the unread tail only: a long input is not held whole.
            if start > 0 {
                pending.removeFirst(start)
                scanned -= start
                start = 0
            }
            let count = read(0, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read standard input: \(String(cString: strerror(errno)))")
            }
            if count == 0 { atEnd = true } else { pending += buffer[..<count] }
        }
    }
}

/// The one member of CONFIG's reply that `zpub pub` reads.
private struct MaxMessageSizeReply: Decodable {
    struct Configuration: Decodable {
        let maxMessageSize: Int
        enum CodingKeys: String, CodingKey { case maxMessageSize = "max_message_size" }
    }
    let configuration: Configuration
}
