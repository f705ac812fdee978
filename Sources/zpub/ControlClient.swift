import ArgumentParser
import Foundation
import ZPubCore
import ZeroMQ

/// One request and its reply on zpubd's control socket, with a deadline: the CLI never hangs on
/// a broker that is down or stuck.
struct ControlClient {
    let endpoint: String
    let timeoutMilliseconds: Int
    var curve: CurveOptions? = nil
    /// Looked at every 100 ms while a reply is awaited: true ends the wait (`Interrupted`), so
    /// that Ctrl-C in `zpub top` is not held for up to --timeout by a broker that is slow.
    var interrupted: () -> Bool = { false }
    /// When shorter than the timeout: how long a connection may take to come up (a wrong
    /// endpoint is told that soon), the rest of the timeout being for the reply.
    var connectTimeoutMilliseconds: Int? = nil
    /// Give up as soon as the connection is refused (nothing listens), rather than wait for the
    /// broker to come: for a question that is only worth asking of a broker already there.
    var givingUpWhenRefused = false
    /// What named `endpoint`, for an error that blames it.
    var source = ControlEndpoint.Source.option

    /// The raw reply (one frame of JSON), or a `CLIError` saying what went wrong.
    func request(_ text: String) throws -> [UInt8] {
        let context = try Context()
        defer { context.terminate() }
        let socket = try Socket(context, type: .req)
        defer { socket.close() }
        try socket.setOption(.linger, 0)
        // A REQ socket's send waits for a connection to take it; when libzmq gives the only
        // one up at once (a refused CURVE handshake, before the send), that wait never ended:
        // `zpub ping` without --server-key hung in 3 of about 530 runs against a CURVE broker.
        let connectTimeout = min(connectTimeoutMilliseconds ?? timeoutMilliseconds, timeoutMilliseconds)
        try socket.setOption(.sendTimeout, Int32(clamping: max(0, connectTimeout)))
        try curve?.apply(to: socket)
        // An ipc file that is not there, or not for this user, is said at once (after what is
        // wrong with the command line, such as a key file): libzmq would retry in silence, and
        // the answer came only after the whole connection timeout.
        if let problem = Self.ipcProblem(endpoint) {
            throw CLIError("no reply from zpubd at \(endpoint): \(problem)")
        }
        let watch = try ConnectionWatch(
            socket, context: context, endpoints: [endpoint], usingCurve: curve?.serverKey != nil,
            expected: "zpubd's control endpoint (not its PULL, XSUB or XPUB, nor another service's port)",
            noticingRefusals: givingUpWhenRefused)
        defer { watch.close() }
        try socket.connect(endpoint, option: source.rawValue)
        let start = SystemClock.monotonicNanoseconds()
        let deadline = start &+ UInt64(max(0, timeoutMilliseconds)) * 1_000_000
        let connectDeadline = start &+ UInt64(max(0, connectTimeout)) * 1_000_000
        let sent = try socket.send(text: text)
        guard sent,
            let frames = try receiveReply(socket, watch: watch, deadline: deadline, connectDeadline: connectDeadline)
        else {
            // Not connected: only the connection's time was waited.
            let waitedMilliseconds = watch.isConnected ? timeoutMilliseconds : connectTimeout
            if let problem = watch.failure() {
                let waited = watch.isHopeless ? "" : " within \(waitedMilliseconds) ms"
                throw CLIError("no reply from zpubd at \(endpoint)\(waited): \(problem)", isFinal: watch.isHopeless)
            }
            // Connected: zpubd is there, but busy (a RELOAD ahead of this request holds the
            // others, and some requests take long); what was asked may still be done.
            if watch.isConnected {
                throw CLIError(
                    "zpubd at \(endpoint) accepted the connection but did not answer within \(timeoutMilliseconds) ms (busy with a request ahead of this one?); the request may still take effect. Retry with a longer --timeout, or look at zpubd's log"
                )
            }
            if let problem = Self.ipcProblem(endpoint) ?? Self.hostProblem(endpoint) {
                throw CLIError("no reply from zpubd at \(endpoint): \(problem)")
            }
            // Something listens there, but no ZeroMQ handshake came: another of zpubd's
            // endpoints (its XPUB or PULL refuses a REQ in silence), or another service.
            if let unanswered = watch.reachedWithoutHandshake(within: "\(waitedMilliseconds) ms") {
                throw CLIError("no reply from zpubd at \(endpoint): \(unanswered)")
            }
            // The packaged service listens elsewhere than the default: say where.
            let service = "/run/zpub/control.sock"
            let packaged =
                // EACCES: there, but in the service's directory, which only root may search.
                endpoint != "ipc://" + service && (access(service, F_OK) == 0 || errno == EACCES)
                ? "; the packaged service listens on ipc://\(service) (sudo zpub ... -c ipc://\(service), or set ZPUB_CONTROL)"
                : ""
            // Given up at the first failed connection (a refusal): no time was waited.
            let what =
                givingUpWhenRefused && watch.isRefusedEverywhere
                ? ": the connection failed (nothing listens there, or the host cannot be reached)"
                : " within \(waitedMilliseconds) ms"
            throw CLIError(
                "no reply from zpubd at \(endpoint)\(what); is zpubd running there? (start it with `zpubd`, or point --control or ZPUB_CONTROL at it)\(packaged)"
            )
        }
        return frames.first ?? []
    }

    /// Why an ipc endpoint cannot be reached, when the file system says: libzmq retries a
    /// connect that fails with EACCES or ENOENT in silence, and "is zpubd running?" misled
    /// whoever ran `zpub stats` on the packaged service's root-only socket without sudo.
    static func ipcProblem(_ endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@") else { return nil }
        let path = String(endpoint.dropFirst("ipc://".count))
        if access(path, F_OK) != 0 {
            if errno == EACCES {
                return
                    "permission denied on a directory of \(path): the packaged service's control socket is for root (run with sudo)"
            }
            return "no socket file at \(path); is zpubd running, with that control endpoint?"
        }
        if access(path, W_OK) != 0 {
            return "permission denied on \(path): the packaged service's control socket is for root (run with sudo)"
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFSOCK {
            let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a socket"
            return
                "\(path) is \(kind), not zpubd's control socket; give the socket's path (e.g. ipc:///run/zpub/control.sock)"
        }
        return nil
    }

    /// Why a tcp endpoint's host cannot be reached, when its name does not resolve: libzmq
    /// resolves it only when it connects, and retries a failure in silence.
    static func hostProblem(_ endpoint: String) -> String? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        var address = endpoint.dropFirst("tcp://".count)
        if let semicolon = address.lastIndex(of: ";") { address = address[address.index(after: semicolon)...] }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &found)
        if let found { freeaddrinfo(found) }
        guard status != 0 else { return nil }
        // EAI_AGAIN: no answer from the resolver at all, which no spelling fixes.
        let advice = status == EAI_AGAIN ? "check the machine's DNS settings" : "check its spelling"
        return "the host name \(host) does not resolve (\(String(cString: gai_strerror(status)))); \(advice)"
    }

    /// The reply, or nil when the deadline passed or libzmq gave the connection up (a refused
    /// handshake: no reply can come, so waiting out the timeout would only keep the person
    /// waiting for the same error).
    private func receiveReply(_ socket: Socket, watch: ConnectionWatch, deadline: UInt64, connectDeadline: UInt64)
        throws -> [[UInt8]]?
    {
        var poller = Poller()
        let reply = poller.add(socket)
        for monitor in watch.monitors { poller.add(monitor) }
        while true {
            if let frames = try socket.receiveFrames(dontWait: true) { return frames }
            if watch.failure() != nil && watch.isHopeless { return nil }
            if givingUpWhenRefused && watch.isRefusedEverywhere { return nil }
            let now = SystemClock.monotonicNanoseconds()
            guard now < deadline, now < connectDeadline || watch.isConnected else { return nil }
            _ = try poller.poll(timeoutMilliseconds: min(100, Int((deadline - now) / 1_000_000) + 1))
            if poller.isReadable(reply), let frames = try socket.receiveFrames(dontWait: true) { return frames }
            if interrupted() { throw Interrupted() }
        }
    }

    /// Sends a command and decodes its reply as `T`, turning an error reply into a `CLIError`
    /// with its message (whatever its code: a newer zpubd may have codes this CLI does not
    /// know), and a reply that is neither into one saying it is not what zpubd sends.
    func request<T: Decodable>(_ text: String, as type: T.Type) throws -> (T, [UInt8]) {
        let reply = try request(text)
        return (try decodeUnlessError(reply, of: text, as: T.self), reply)
    }

    /// `request(_:as:)`'s second half, for a reply already in hand.
    func decodeUnlessError<T: Decodable>(_ reply: [UInt8], of text: String, as type: T.Type) throws -> T {
        if let error = Self.errorMessage(reply) {
            throw CLIError(
                "zpubd answered with an error\(error.code.map { " (\($0))" } ?? ""): \(error.message)",
                code: error.code ?? "", reply: reply)
        }
        return try decode(reply, of: text, as: T.self)
    }

    /// A reply to `text` that is not an error, decoded as `T`; one that is neither is said not to
    /// be what zpubd sends.
    func decode<T: Decodable>(_ reply: [UInt8], of text: String, as type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(reply))
        } catch {
            throw CLIError(
                "the reply from \(endpoint) is not what zpubd sends to \(text.split(separator: " ").first ?? ""): \(Self.whatIsWrong(error)) in \(Self.excerpt(reply)). Is that really zpubd's control endpoint (--control, ZPUB_CONTROL)?"
            )
        }
    }

    /// An error reply's code and message, or nil when `reply` is not one. Read loosely:
    /// `{"error": {"code", "message"}}` with any code, or `{"error": "text"}`.
    static func errorMessage(_ reply: [UInt8]) -> (code: String?, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any],
            let error = object["error"]
        else { return nil }
        if let text = error as? String { return (nil, text) }
        let detail = error as? [String: Any]
        return (detail?["code"] as? String, detail?["message"] as? String ?? "no message given")
    }

    /// What a decoding error found wrong, in a few words rather than Foundation's dump.
    private static func whatIsWrong(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?:
            return "no \"\(path(context.codingPath + [key]))\""
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return context.codingPath.isEmpty
                ? "not a JSON object" : "\"\(path(context.codingPath))\" is not of the expected type"
        case .dataCorrupted(let context)? where !context.codingPath.isEmpty:
            return "\"\(path(context.codingPath))\" has a value this zpub does not know"
        default:
            return "not JSON"
        }
    }

    /// The start of a reply, for an error message: what came, not all of it.
    private static func excerpt(_ reply: [UInt8]) -> String {
        if reply.isEmpty { return "an empty reply" }
        // Escaped as `zpub sub` shows bytes: what answers may be anything, ESC and BEL included.
        return "\"\(Subscribe.escape(Array(reply.prefix(60))))\"\(reply.count > 60 ? "..." : "") (\(reply.count) bytes)"
    }
}

extension Socket {
    /// Connects to an endpoint given on the command line (`option` names where): a malformed one
    /// gets the same hint zpubd gives for its configuration (`Endpoint.problem`) instead of
    /// libzmq's bare "Invalid argument", and a refused one libzmq's reason.
    func connect(_ endpoint: String, option: String) throws {
        if let problem = Endpoint.problem(with: endpoint) { throw CLIError("\(option) \"\(endpoint)\": \(problem)") }
        do {
            try connect(endpoint)
        } catch let error as ZMQError {
            throw CLIError("cannot connect to \(endpoint): \(error.reason); check the endpoint (\(option))")
        }
    }
}

extension ControlClient {
    init(_ control: ControlEndpoint, timeoutMilliseconds: Int, curve: CurveOptions?) {
        self.init(endpoint: control.endpoint, timeoutMilliseconds: timeoutMilliseconds, curve: curve)
        source = control.source
    }
}

/// A wait for a reply ended by a signal the caller takes next (`ControlClient.interrupted`).
struct Interrupted: Error {}

/// An error for a person: printed as `zpub: message`, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    /// zpubd's error code, when the error is its answer (`history_off`, ...).
    let code: String?
    /// Asking again would meet the same answer: libzmq gave the connection up (a refused
    /// handshake, such as a CURVE socket asked without --server-key). A caller that waits for
    /// a broker to come stops there.
    let isFinal: Bool
    /// zpubd's error reply as it came, for `--json` (`reportingErrors(json:)`).
    let reply: [UInt8]?
    init(_ description: String, code: String? = nil, isFinal: Bool = false, reply: [UInt8]? = nil) {
        self.description = description
        self.code = code
        self.isFinal = isFinal
        self.reply = reply
    }
}

/// Output that reaches the reader at once, even through a pipe (one write(2) per call).
enum Output {
    /// sysexits' EX_IOERR: standard output could not be written.
    static let cannotWriteExitStatus: Int32 = 74

    static func line(_ text: String) {
        writeOut(Array((text + "\n").utf8))
    }

    static func raw(_ bytes: [UInt8]) {
        writeOut(bytes + [10])
    }

    /// Writes all of `bytes` to standard output, or ends zpub with `cannotWriteExitStatus`:
    /// a script whose output goes to a full disk must not lose messages and see success (a
    /// probe: `zpub sub > /dev/full` ran on, printing nothing). A reader that went away is
    /// SIGPIPE's, as for any tool in a pipe.
    private static func writeOut(_ bytes: [UInt8]) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(1, $0.baseAddress! + written, $0.count - written) }
            if result > 0 {
                written += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                let reason = result < 0 ? String(cString: strerror(errno)) : "nothing was written"
                error("cannot write to standard output (\(reason)); what was not written is lost")
                exit(cannotWriteExitStatus)
            }
        }
    }

    static func error(_ text: String) {
        var bytes = Array("zpub: \(text)\n".utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}

extension ParsableCommand {
    /// Runs `body`, printing a `CLIError` or libzmq error for a person and exiting 1. With
    /// `json`, an error zpubd answered with is also printed on standard output as it came: a
    /// script reading `--json` got nothing to parse (an audit).
    func reportingErrors(json: Bool = false, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as CLIError {
            if json, let reply = error.reply { Output.raw(reply) }
            Output.error(error.description)
            throw ExitCode.failure
        } catch let error as ZMQError {
            Output.error("\(error)")
            throw ExitCode.failure
        }
    }
}
