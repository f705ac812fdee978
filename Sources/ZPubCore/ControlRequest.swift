/// A request on the control socket: one frame of UTF-8 text, a command word and an optional
/// argument: for SUBSCRIPTIONS and TOPICS, whose argument is a prefix, everything after the one
/// space (or tab) that ends the word, so that a prefix may start with or contain spaces; for the
/// others, everything after the first run of spaces. See docs/control-protocol.md.
public enum ControlCommand: String, CaseIterable, Sendable {
    case ping = "PING"
    case health = "HEALTH"
    case stats = "STATS"
    case subscriptions = "SUBSCRIPTIONS"
    case topics = "TOPICS"
    case config = "CONFIG"
    case version = "VERSION"
    case pause = "PAUSE"
    case resume = "RESUME"
    case reload = "RELOAD"
    case snapshot = "SNAPSHOT"
    case history = "HISTORY"
    case replay = "REPLAY"
    case help = "HELP"

    /// Whether the command takes an argument.
    var takesArgument: Bool {
        takesPrefix || self == .snapshot || self == .history || self == .replay
    }

    /// Whether the whole argument is a topic prefix, kept byte for byte.
    var takesPrefix: Bool { self == .subscriptions || self == .topics }
}

public struct ControlRequest: Equatable, Sendable {
    public var command: ControlCommand
    /// The argument's bytes (a topic prefix), empty when none was given.
    public var argument: [UInt8]

    public init(command: ControlCommand, argument: [UInt8] = []) {
        self.command = command
        self.argument = argument
    }

    /// Parses a request from the frames received on the control socket. Never traps: every
    /// malformed request becomes a `ControlError` to send back.
    public static func parse(frames: [[UInt8]], maxSize: Int) -> Result<ControlRequest, ControlError> {
        guard frames.count == 1 else {
            return .failure(
                ControlError(.badRequest, "a request is exactly one frame; this one had \(frames.count)"))
        }
        return parse(frames[0], maxSize: maxSize)
    }

    public static func parse(_ frame: [UInt8], maxSize: Int) -> Result<ControlRequest, ControlError> {
        if frame.count > maxSize {
            return .failure(
                ControlError(.requestTooLarge, "the request is \(frame.count) bytes; the limit is \(maxSize)"))
        }
        guard let text = String(validating: frame, as: UTF8.self) else {
            return .failure(ControlError(.invalidUTF8, "the request is not valid UTF-8 text"))
        }
        let trimmed = text.drop { $0 == " " || $0 == "\t" }
        // `isNewline`: "\r\n" is one Character in Swift, equal to neither "\r" nor "\n".
        let wordEnd = trimmed.firstIndex { $0 == " " || $0 == "\t" || $0.isNewline } ?? trimmed.endIndex
        // ASCII letters only: Unicode's rules made "ſtats" (U+017F) STATS (an audit).
        let word = String(
            decoding: trimmed[..<wordEnd].utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
        if word.isEmpty {
            return .failure(
                ControlError(.emptyRequest, "the request is empty; send a command such as STATS (HELP lists them)"))
        }
        guard let command = ControlCommand(rawValue: word) else {
            let shown = word.count > 40 ? String(word.prefix(40)) + "..." : word
            return .failure(
                ControlError(
                    .unknownCommand,
                    "unknown command \"\(shown)\"; commands are \(ControlCommand.allCases.map(\.rawValue).joined(separator: ", "))"
                ))
        }
        var rest = trimmed[wordEnd...]
        // A prefix is all that follows the one separator: " lead" is not "lead" (zpub
        // subscriptions " lead" answered for "lead").
        if command.takesPrefix, let first = rest.first, first == " " || first == "\t" {
            rest = rest.dropFirst()
        } else {
            rest = rest.drop { $0 == " " || $0 == "\t" }
        }
        // A trailing newline (from `echo STATS | ...`) is not part of an argument.
        while let last = rest.last, last.isNewline { rest = rest.dropLast() }
        if !rest.isEmpty && !command.takesArgument {
            return .failure(ControlError(.badArgument, "\(command.rawValue) takes no argument"))
        }
        let request = ControlRequest(command: command, argument: Array(rest.utf8))
        if command == .snapshot && request.snapshotArguments == nil {
            return .failure(
                ControlError(
                    .badArgument,
                    "SNAPSHOT takes a token and an optional prefix: SNAPSHOT <token> [prefix]; the token is 1 to 64 letters, digits, - or _ (see docs/last-value.md)"
                ))
        }
        if command == .history {
            guard let query = HistoryQuery.parse(request.argument) else {
                return .failure(
                    ControlError(
                        .badArgument,
                        "HISTORY takes since <sequence> or last <count>, then optionally until <sequence>, then an optional prefix: HISTORY since 0 orders. (see docs/history.md)"
                    ))
            }
            // Answered with no message, it read as "nothing was kept there".
            if case .since(let since) = query.position, let until = query.through, until < since {
                return .failure(
                    ControlError(
                        .badArgument,
                        "HISTORY since \(since) until \(until): until is below since, so no message lies between them; since is the sequence before the first wanted, until the last wanted (see docs/history.md)"
                    ))
            }
        }
        if command == .replay && request.replayArguments == nil {
            return .failure(
                ControlError(
                    .badArgument,
                    "REPLAY takes a token, a sequence and an optional prefix: REPLAY <token> <since> [prefix]; the token is 1 to 64 letters, digits, - or _, and since a whole number, 0 or more (see docs/history.md)"
                ))
        }
        return .success(request)
    }

    /// For REPLAY: the client's token, the sequence to replay after, the prefix (possibly empty).
    public var replayArguments: (token: String, since: UInt64, prefix: [UInt8])? {
        guard let (token, rest) = snapshotArguments else { return nil }
        // Spaces before the number are a run, as before; the prefix after it is byte for byte.
        let text = String(decoding: rest, as: UTF8.self).drop { $0 == " " }
        let number = text.prefix { $0 != " " }
        guard let since = HistoryQuery.decimal(number) else { return nil }
        return (token, since, Array(Self.afterOneSpace(text.dropFirst(number.count)).utf8))
    }

    /// A prefix argument after the word before it: everything past the one space that ends
    /// that word, byte for byte, as SUBSCRIPTIONS and TOPICS take theirs. With every leading
    /// space dropped, `SNAPSHOT tok  state.` was answered for "state.", and `zpub sub
    /// --snapshot " state."` printed values its subscription never matches (an audit).
    static func afterOneSpace(_ text: Substring) -> Substring {
        text.first == " " ? text.dropFirst() : text
    }

    /// For SNAPSHOT: the client's token and the topic prefix (possibly empty).
    public var snapshotArguments: (token: String, prefix: [UInt8])? {
        let text = String(decoding: argument, as: UTF8.self)
        let token = text.prefix { $0 != " " }
        guard SnapshotReply.isValidToken(token) else { return nil }
        return (String(token), Array(Self.afterOneSpace(text.dropFirst(token.count)).utf8))
    }
}

/// An error reply: `{"error": {"code": "...", "message": "..."}}`.
public struct ControlError: Error, Codable, Equatable, Sendable {
    public enum Code: String, Codable, Sendable {
        case badRequest = "bad_request"
        case requestTooLarge = "request_too_large"
        case invalidUTF8 = "invalid_utf8"
        case emptyRequest = "empty_request"
        case unknownCommand = "unknown_command"
        case badArgument = "bad_argument"
        /// The forwarding loop did not answer in time.
        case unavailable = "unavailable"
        /// SNAPSHOT: the client's marker subscription never arrived.
        case snapshotTimeout = "snapshot_timeout"
        /// HISTORY while no history prefixes are configured.
        case historyOff = "history_off"
        /// HISTORY and REPLAY: the store could not be read (a disk or file problem).
        case historyReadFailed = "history_read_failed"
        /// RELOAD: the file, or something it names, was refused; the configuration in force is
        /// unchanged (the message says why, with the line).
        case reloadRefused = "reload_refused"
        case internalError = "internal_error"
    }

    public var code: Code
    public var message: String
    /// `history_read_failed`: the messages that could not be read, when they are one block's
    /// (`zpub history` says so and reads on after them).
    public var damaged: HistoryReply.Gap?

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The envelope of an error reply, so that `{"error": ...}` decodes and encodes as one value.
public struct ControlErrorReply: Codable, Equatable, Sendable {
    public var error: ControlError
    public init(error: ControlError) { self.error = error }
}
