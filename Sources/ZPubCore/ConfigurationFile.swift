/// A problem found in a configuration file: where, and what to do about it.
public struct ConfigurationProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line number, or nil for a problem of the file as a whole.
    public var line: Int?
    public var message: String

    public init(line: Int?, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "line \(line): \(message)" }
        return message
    }
}

/// Every problem of a configuration file, in line order.
public struct ConfigurationProblems: Error, Equatable, Sendable {
    public var problems: [ConfigurationProblem]
    public init(problems: [ConfigurationProblem]) { self.problems = problems }
}

/// Reads zpubd's configuration file format: a small subset of TOML, so that editors highlight it
/// and any TOML tool can read it. Supported: `# comments`, `[section]` headers, and
/// `key = value` where a value is a "string", an integer (underscores allowed), true/false, or an
/// array of strings (which may span lines). Unknown sections and keys are errors, so a typo is
/// never silently ignored.
///
/// All problems are collected, each with its line, before the file is refused.
public enum ConfigurationFile {
    /// Parses `text` on top of `base` (normally the defaults), and validates the result. Returns
    /// the configuration or every problem found, in line order.
    public static func parse(
        _ text: String, base: BrokerConfiguration = BrokerConfiguration()
    ) -> Result<BrokerConfiguration, ConfigurationProblems> {
        let (configuration, keyLines, fileProblems) = read(text, base: base)
        let problems = allProblems(fileProblems, configuration, keyLines: keyLines)
        return problems.isEmpty ? .success(configuration) : .failure(ConfigurationProblems(problems: problems))
    }

    /// In line order, problems of the file as a whole last.
    public static func sorted(_ problems: [ConfigurationProblem]) -> [ConfigurationProblem] {
        problems.sorted { ($0.line ?? .max) < ($1.line ?? .max) }
    }

    /// The file's problems and the whole configuration's, in line order; not a validation
    /// problem of a key whose value the file's problems already refused (on its line): that
    /// key kept its default, and `role = "Primary"` was also told "[ha] has bind or peer but
    /// no role".
    public static func allProblems(
        _ fileProblems: [ConfigurationProblem], _ configuration: BrokerConfiguration, keyLines: [String: Int]
    ) -> [ConfigurationProblem] {
        let refusedLines = Set(fileProblems.compactMap(\.line))
        // A refused role leaves none: "[ha] has failover_ms but no role" on failover_ms's line
        // followed `role = "primry"`'s own problem.
        let roleRefused = keyLines["role"].map { refusedLines.contains($0) } ?? false
        let validation = validate(configuration, keyLines: keyLines).filter {
            ($0.line.map { !refusedLines.contains($0) } ?? true)
                && !(roleRefused && $0.message.hasPrefix("[ha] has ") && $0.message.contains(" but no role"))
        }
        return sorted(fileProblems + validation)
    }

    /// `configuration.validate()`'s problems, each with the line of the key it is about
    /// (`keyLines`, from `read`; none for a key the command line set), in line order.
    public static func validate(_ configuration: BrokerConfiguration, keyLines: [String: Int])
        -> [ConfigurationProblem]
    {
        sorted(configuration.validate().map { ConfigurationProblem(line: keyLines[$0.key], message: $0.message) })
    }

    /// Parses `text` on top of `base` without validating the whole: the configuration (the keys
    /// that could be read applied), the line of each key set (by `validate()`'s names), and the
    /// problems of the file itself. For a caller that changes the configuration (the command
    /// line's flags) before it validates it.
    public static func read(
        _ text: String, base: BrokerConfiguration = BrokerConfiguration()
    ) -> (configuration: BrokerConfiguration, keyLines: [String: Int], problems: [ConfigurationProblem]) {
        var configuration = base
        var problems: [ConfigurationProblem] = []
        var keyLines: [String: Int] = [:]
        var seenKeys: [String: Int] = [:]
        var seenSections: [String: Int] = [:]

        var parser = Parser(text)
        var section = ""
        while let statement = parser.nextStatement() {
            switch statement {
            case .failure(let problem):
                problems.append(problem)
            case .success(.section(let name, let line)):
                guard Schema.sections.contains(name) else {
                    problems.append(
                        ConfigurationProblem(
                            line: line,
                            message:
                                "unknown section [\(name.shownInProblem)]; sections are \(Schema.sections.filter { !$0.isEmpty }.map { "[\($0)]" }.joined(separator: ", "))"
                        ))
                    section = "?"
                    continue
                }
                // TOML defines a table once: a second [limits] was taken as a continuation,
                // where any TOML tool refuses the file (an audit).
                if let first = seenSections[name] {
                    problems.append(
                        ConfigurationProblem(
                            line: line,
                            message:
                                "[\(name)] appears twice (first on line \(first)); a section is written once: put its keys under the first"
                        ))
                }
                seenSections[name] = seenSections[name] ?? line
                section = name
            case .success(.assignment(let key, let value, let line)):
                if section == "?" { continue }  // already reported the unknown section
                let qualified = section.isEmpty ? key : "\(section).\(key)"
                guard let field = Schema.fields.first(where: { $0.section == section && $0.key == key }) else {
                    let known = Schema.fields.filter { $0.section == section }.map(\.key)
                    // Every section that has the key: max_bytes is [last_value]'s and [history]'s.
                    var elsewhere: [String] = []
                    for field in Schema.fields where field.key == key && !elsewhere.contains(field.section) {
                        elsewhere.append(field.section)
                    }
                    // TOML's dotted keys (limits.max_topics = 5) are not read: say where it goes.
                    let dotted = key.lastIndex(of: ".").map {
                        (String(key[..<$0]), String(key[key.index(after: $0)...]))
                    }
                    let hint =
                        if let (table, name) = dotted,
                            Schema.fields.contains(where: { $0.section == table && $0.key == name })
                        {
                            "; dotted keys are not read here: write \(name) under [\(table)]"
                        } else if !elsewhere.isEmpty {
                            "; \(key) belongs in " + elsewhere.map { "[\($0)]" }.joined(separator: " or ")
                        } else {
                            known.isEmpty ? "" : "; keys here are \(known.joined(separator: ", "))"
                        }
                    problems.append(
                        ConfigurationProblem(
                            line: line,
                            message:
                                "unknown key \(key.shownInProblem) in \(section.isEmpty ? "the top level" : "[\(section)]")\(hint)"
                        ))
                    continue
                }
                if let first = seenKeys[qualified] {
                    problems.append(
                        ConfigurationProblem(
                            line: line, message: "\(qualified) is set twice (first on line \(first)); keep one"))
                    continue
                }
                seenKeys[qualified] = line
                // Also for a value refused: a validation problem of the key is then left out
                // (`allProblems`).
                keyLines[field.configurationKey] = line
                if let message = field.apply(value, &configuration) {
                    problems.append(ConfigurationProblem(line: line, message: message))
                }
            }
        }

        // Sections that only repeat the defaults (as the sample file does) change nothing.
        configuration.security = configuration.security.filter { $0.value != SocketSecurity() }
        return (configuration, keyLines, problems)
    }
}

// MARK: - Schema

/// A value as written in the file.
enum ConfigurationValue: Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case stringArray([String])

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .boolean: "true or false"
        case .stringArray: "an array of strings"
        }
    }
}

enum Schema {
    struct Field: Sendable {
        let section: String
        let key: String
        /// The name used by `BrokerConfiguration.validate()` for this field.
        let configurationKey: String
        /// Returns an error message, or nil when the value was applied.
        let apply: @Sendable (ConfigurationValue, inout BrokerConfiguration) -> String?
    }

    static let sections =
        ["", "daemon", "endpoints", "sockets", "limits", "last_value", "history", "security", "http", "ha"]
        + BrokerSocketRole.allCases.map { "security.\($0.rawValue)" }

    static func boolean(
        _ section: String, _ key: String, _ path: WritableKeyPath<BrokerConfiguration, Bool> & Sendable,
        configurationKey: String? = nil
    ) -> Field {
        Field(section: section, key: key, configurationKey: configurationKey ?? key) { value, configuration in
            guard case .boolean(let flag) = value else {
                return "\(key) must be true or false, not \(value.typeName)"
            }
            configuration[keyPath: path] = flag
            return nil
        }
    }

    static func integer(
        _ section: String, _ key: String, _ path: WritableKeyPath<BrokerConfiguration, Int> & Sendable,
        configurationKey: String? = nil
    ) -> Field {
        Field(section: section, key: key, configurationKey: configurationKey ?? key) { value, configuration in
            guard case .integer(let number) = value else {
                // "1000" in quotes is the likeliest slip: say what to write.
                let quoted = if case .string = value { ": write it without quotes" } else { "" }
                return "\(key) must be an integer, not \(value.typeName)\(quoted)"
            }
            configuration[keyPath: path] = number
            return nil
        }
    }

    static func endpoints(_ key: String, _ role: BrokerSocketRole) -> Field {
        Field(section: "endpoints", key: key, configurationKey: role.rawValue) { value, configuration in
            switch value {
            case .stringArray(let list): configuration.setEndpoints(list, for: role)
            case .string(let single): configuration.setEndpoints([single], for: role)
            default:
                return
                    "\(key) must be an array of endpoint strings, e.g. [\"tcp://127.0.0.1:5556\"], not \(value.typeName)"
            }
            return nil
        }
    }

    static let fields: [Field] =
        [
            Field(section: "daemon", key: "log_level", configurationKey: "log_level") { value, configuration in
                guard case .string(let level) = value else {
                    return "log_level must be a string, not \(value.typeName)"
                }
                configuration.logLevel = level
                return nil
            },
            boolean("daemon", "topic_accounting", \.topicAccounting),
            integer("daemon", "shutdown_drain_ms", \.shutdownDrainMilliseconds),
            integer("daemon", "resume_catch_up_ms", \.resumeCatchUpMilliseconds),
            integer("daemon", "catch_up_stall_ms", \.catchUpStallMilliseconds),
            integer("daemon", "start_hold_ms", \.startHoldMilliseconds),
            endpoints("control", .control),
            endpoints("xpub", .xpub),
            endpoints("pull", .pull),
            endpoints("xsub", .xsub),
            Field(section: "endpoints", key: "upstream", configurationKey: "upstream") { value, configuration in
                switch value {
                case .stringArray(let list): configuration.upstreamEndpoints = list
                case .string(let single): configuration.upstreamEndpoints = [single]
                default: return "upstream must be an array of endpoint strings, not \(value.typeName)"
                }
                return nil
            },
            Field(section: "last_value", key: "prefixes", configurationKey: "prefixes") { value, configuration in
                switch value {
                case .stringArray(let list): configuration.lastValuePrefixes = list
                case .string(let single): configuration.lastValuePrefixes = [single]
                default: return "prefixes must be an array of topic prefixes, e.g. [\"state.\"], not \(value.typeName)"
                }
                return nil
            },
            integer("last_value", "max_entries", \.lastValueMaxEntries),
            integer("last_value", "max_bytes", \.lastValueMaxBytes),
            integer("last_value", "max_age_s", \.lastValueMaxAgeSeconds),
            boolean("last_value", "on_subscribe", \.lastValueOnSubscribe, configurationKey: "last_value_on_subscribe"),
            Field(section: "history", key: "prefixes", configurationKey: "history_prefixes") { value, configuration in
                switch value {
                case .stringArray(let list): configuration.historyPrefixes = list
                case .string(let single): configuration.historyPrefixes = [single]
                default: return "prefixes must be an array of topic prefixes, e.g. [\"orders.\"], not \(value.typeName)"
                }
                return nil
            },
            integer("history", "max_messages", \.historyMaxMessages, configurationKey: "history_max_messages"),
            integer("history", "max_bytes", \.historyMaxBytes, configurationKey: "history_max_bytes"),
            integer("history", "max_age_s", \.historyMaxAgeSeconds, configurationKey: "history_max_age_s"),
            integer(
                "history", "sync_interval_ms", \.historySyncIntervalMilliseconds,
                configurationKey: "history_sync_interval_ms"),
            integer("history", "queue_bytes", \.historyQueueBytes, configurationKey: "history_queue_bytes"),
            integer(
                "history", "sequence_reserve", \.historySequenceReserve,
                configurationKey: "history_sequence_reserve"),
            Field(section: "history", key: "directory", configurationKey: "state_directory") { value, configuration in
                guard case .string(let path) = value else { return "directory must be a path in quotes" }
                configuration.stateDirectory = path
                return nil
            },
            Field(section: "security", key: "server_secret_key_file", configurationKey: "curve") {
                value, configuration in
                guard case .string(let path) = value else { return "server_secret_key_file must be a path in quotes" }
                configuration.serverSecretKeyFile = path
                return nil
            },
            Field(section: "security", key: "control_ipc_mode", configurationKey: "control_ipc_mode") {
                value, configuration in
                guard case .string(let text) = value, let mode = FileMode(octal: text) else {
                    return "control_ipc_mode must be an octal mode in quotes, e.g. \"0660\""
                }
                configuration.controlIPCMode = mode
                return nil
            },
            integer("sockets", "send_hwm", \.sendHighWaterMark),
            integer("sockets", "receive_hwm", \.receiveHighWaterMark),
            integer("sockets", "linger_ms", \.lingerMilliseconds),
            integer("sockets", "max_message_size", \.maxMessageSize),
            integer("sockets", "handshake_timeout_ms", \.handshakeMilliseconds),
            integer("sockets", "io_threads", \.ioThreads),
            integer("sockets", "multicast_rate_kbps", \.multicastRateKbps),
            integer("sockets", "heartbeat_interval_ms", \.heartbeatIntervalMilliseconds),
            integer("sockets", "heartbeat_timeout_ms", \.heartbeatTimeoutMilliseconds),
            integer("sockets", "tcp_keepalive_idle_s", \.tcpKeepaliveIdleSeconds),
            integer("sockets", "tcp_keepalive_interval_s", \.tcpKeepaliveIntervalSeconds),
            integer("sockets", "tcp_keepalive_count", \.tcpKeepaliveCount),
            integer("limits", "max_topics", \.maxTopics),
            integer("limits", "max_subscriptions", \.maxSubscriptions),
            integer("limits", "max_live_subscriptions", \.maxLiveSubscriptions),
            integer("limits", "max_subscription_length", \.maxSubscriptionLength),
            integer("limits", "max_control_request", \.maxControlRequest),
        ] + BrokerSocketRole.allCases.flatMap(securityFields) + httpFields + pairFields

    /// `curve`, `allowed_keys` and `allowed_addresses` in [security.<role>].
    static func securityFields(_ role: BrokerSocketRole) -> [Field] {
        let section = "security.\(role.rawValue)"
        return [
            Field(section: section, key: "curve", configurationKey: "\(section).curve") { value, configuration in
                guard case .boolean(let flag) = value else { return "curve must be true or false" }
                configuration.security[role, default: SocketSecurity()].curve = flag
                return nil
            },
            Field(section: section, key: "allowed_keys", configurationKey: "\(section).allowed_keys") {
                value, configuration in
                guard case .string(let path) = value else {
                    return "allowed_keys must be the path of a key file or directory, in quotes"
                }
                configuration.security[role, default: SocketSecurity()].allowedKeys = path
                return nil
            },
            Field(section: section, key: "allowed_addresses", configurationKey: "\(section).allowed_addresses") {
                value, configuration in
                switch value {
                case .stringArray(let blocks):
                    configuration.security[role, default: SocketSecurity()].allowedAddresses = blocks
                case .string(let block):
                    configuration.security[role, default: SocketSecurity()].allowedAddresses = [block]
                default: return "allowed_addresses must be an array of CIDR blocks, e.g. [\"10.0.0.0/8\"]"
                }
                return nil
            },
        ]
    }

}

// MARK: - Parser

/// A line-oriented parser for the TOML subset; collects a problem and skips to the next line on
/// any error, so that one file yields all its problems at once.
struct Parser {
    enum Statement {
        case section(String, line: Int)
        case assignment(key: String, value: ConfigurationValue, line: Int)
    }

    private let bytes: [UInt8]
    private var position = 0
    private var line = 1
    /// Set by a problem found at the start of a later line (an array left open before a new
    /// section or key): the next statement starts there instead of after the rest of that line.
    private var resumeAtPosition = false

    init(_ text: String) {
        bytes = Array(text.utf8)
        // A byte order mark, as some editors on Windows write: not part of the first line.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
    }

    mutating func nextStatement() -> Result<Statement, ConfigurationProblem>? {
        skipBlankAndComments()
        guard position < bytes.count else { return nil }
        let startLine = line
        let result: Result<Statement, ConfigurationProblem>
        if bytes[position] == UInt8(ascii: "[") {
            result = parseSection()
        } else {
            result = parseAssignment()
        }
        if case .failure = result {
            if !resumeAtPosition { skipRestOfLine() }
            resumeAtPosition = false
        } else if let trailing = expectEndOfLine() {
            skipRestOfLine()
            return .failure(ConfigurationProblem(line: startLine, message: trailing))
        }
        return result
    }

    private mutating func parseSection() -> Result<Statement, ConfigurationProblem> {
        let startLine = line
        position += 1
        skipSpaces()
        let name = readBareWord()
        skipSpaces()
        guard !name.isEmpty, position < bytes.count, bytes[position] == UInt8(ascii: "]") else {
            return .failure(ConfigurationProblem(line: startLine, message: "a section header is [name], e.g. [limits]"))
        }
        position += 1
        return .success(.section(name, line: startLine))
    }

    private mutating func parseAssignment() -> Result<Statement, ConfigurationProblem> {
        let startLine = line
        let key = readBareWord()
        guard !key.isEmpty else {
            return .failure(
                ConfigurationProblem(line: startLine, message: "expected key = value, found \"\(restOfLinePreview())\"")
            )
        }
        skipSpaces()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else {
            return .failure(
                ConfigurationProblem(line: startLine, message: "expected = after the key \(key.shownInProblem)"))
        }
        position += 1
        skipSpaces()
        switch parseValue(allowArray: true) {
        case .success(let value): return .success(.assignment(key: key, value: value, line: startLine))
        case .failure(let problem): return .failure(problem)
        }
    }

    private mutating func parseValue(allowArray: Bool) -> Result<ConfigurationValue, ConfigurationProblem> {
        let startLine = line
        guard position < bytes.count, bytes[position] != UInt8(ascii: "\n") else {
            return .failure(ConfigurationProblem(line: startLine, message: "a value is missing after ="))
        }
        let byte = bytes[position]
        if byte == UInt8(ascii: "\"") { return parseString().map { .string($0) } }
        if byte == UInt8(ascii: "[") {
            guard allowArray else {
                return .failure(
                    ConfigurationProblem(line: startLine, message: "arrays inside arrays are not supported"))
            }
            return parseArray()
        }
        let word = readBareWord()
        if word == "true" { return .success(.boolean(true)) }
        if word == "false" { return .success(.boolean(false)) }
        // TOML's underscores stand between two digits only: `1__0_` was read as 10, where any
        // TOML tool refuses it (an audit).
        // (For what starts as a number: an unquoted word such as json_lines is no value at
        // all, said below.)
        if word.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "_" }) == true && word.contains("_")
            && !word.hasUnderscoresBetweenDigits
        {
            return .failure(
                ConfigurationProblem(
                    line: startLine,
                    message: "\(word.shownInProblem): an underscore goes between two digits only, as in 1_000_000"))
        }
        // TOML's hexadecimal, octal and binary integers (0x100 was "not a whole number").
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where word.hasPrefix(prefix) {
            // Digits of the base only, the first one a digit: Int(_:radix:) takes a sign too
            // (0x-1), and 0b_1 passed the underscore rule on the b (a review).
            func isDigit(_ character: Character) -> Bool {
                character.isASCII && (character.hexDigitValue.map { $0 < radix } ?? false)
            }
            let body = word.dropFirst(2)
            let rest = String(body).replacingUnderscores()
            let digitsOnly = body.first.map(isDigit) == true && rest.allSatisfy(isDigit)
            if digitsOnly, let number = Int(rest, radix: radix) { return .success(.integer(number)) }
            return .failure(
                ConfigurationProblem(
                    line: startLine,
                    message: digitsOnly
                        ? "\(word.shownInProblem) is too large for a whole number (at most \(Int.max))"
                        : "\(word.shownInProblem) is not a whole number in base \(radix)"))
        }
        let digits = word.replacingUnderscores()
        if !word.isEmpty, let number = Int(digits) { return .success(.integer(number)) }
        let unsigned = digits.first == "-" || digits.first == "+" ? digits.dropFirst() : Substring(digits)
        if !unsigned.isEmpty && unsigned.allSatisfy({ $0.isASCII && $0.isNumber }) {
            return .failure(
                ConfigurationProblem(
                    line: startLine,
                    message:
                        "\(word.shownInProblem) is too large for a whole number (at most \(Int.max)); the key's own range is smaller still"
                ))
        }
        let shown = word.isEmpty ? restOfLinePreview() : word.shownInProblem
        if byte == UInt8(ascii: "'") {
            // TOML's literal strings: not read here, and the likeliest slip from other formats.
            let quoted = shown.dropFirst().firstIndex(of: "'").map { String(shown[...$0]) } ?? shown
            return .failure(
                ConfigurationProblem(
                    line: startLine,
                    message: "\(quoted) is in single quotes; strings here take double quotes (\"like this\")"))
        }
        if Double(digits) != nil {
            return .failure(
                ConfigurationProblem(
                    line: startLine,
                    message: "\(shown) is not a whole number: numbers here are whole (milliseconds, bytes, counts)"))
        }
        // Not in quotes: a word the user wrote bare is shown as written.
        return .failure(
            ConfigurationProblem(
                line: startLine,
                message:
                    "\(shown) is not a value: write a whole number, true or false, a \"quoted string\" or [\"a\", \"list\"]"
            ))
    }

    private mutating func parseString() -> Result<String, ConfigurationProblem> {
        let startLine = line
        position += 1  // opening quote
        var out: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\n") { break }
            position += 1
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: out, as: UTF8.self) else {
                    return .failure(ConfigurationProblem(line: startLine, message: "the string is not valid UTF-8"))
                }
                return .success(text)
            }
            if byte == UInt8(ascii: "\\") {
                // A backslash at the end of the line: the string ends there unclosed. Taking the
                // newline as the escaped byte ate the next line and shifted every later line
                // number in the errors.
                guard position < bytes.count, bytes[position] != UInt8(ascii: "\n") else { break }
                let escaped = bytes[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "n"): out.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): out.append(UInt8(ascii: "\t"))
                default:
                    return .failure(
                        ConfigurationProblem(
                            line: startLine,
                            message:
                                "unknown escape \\\(Character(UnicodeScalar(escaped))) in a string; use \\\\ for a backslash"
                        ))
                }
                continue
            }
            out.append(byte)
        }
        return .failure(ConfigurationProblem(line: startLine, message: "the string has no closing quote on this line"))
    }

    private mutating func parseArray() -> Result<ConfigurationValue, ConfigurationProblem> {
        let startLine = line
        position += 1  // [
        var items: [String] = []
        while true {
            var before = line
            skipBlankAndComments()
            guard position < bytes.count else {
                return .failure(ConfigurationProblem(line: startLine, message: "the array has no closing ]"))
            }
            if line != before, let problem = unclosedArray(startLine) { return .failure(problem) }
            if bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .success(.stringArray(items))
            }
            let itemLine = line
            switch parseValue(allowArray: false) {
            case .success(.string(let item)): items.append(item)
            case .success(let other):
                return .failure(
                    ConfigurationProblem(line: itemLine, message: "array items must be strings, not \(other.typeName)"))
            case .failure(let problem): return .failure(problem)
            }
            before = line
            skipBlankAndComments()
            guard position < bytes.count else { continue }
            if line != before, let problem = unclosedArray(startLine) { return .failure(problem) }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
            } else if bytes[position] != UInt8(ascii: "]") {
                return .failure(ConfigurationProblem(line: line, message: "expected , or ] in the array"))
            }
        }
    }

    // MARK: Lexing helpers

    private mutating func readBareWord() -> String {
        let start = position
        while position < bytes.count, Self.isWordByte(bytes[position]) { position += 1 }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: ".")
    }

    private mutating func skipSpaces() {
        while position < bytes.count,
            bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t")
                || bytes[position] == UInt8(ascii: "\r")
        {
            position += 1
        }
    }

    /// Skips spaces, newlines and comments.
    private mutating func skipBlankAndComments() {
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\n") {
                line += 1
                position += 1
            } else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
                position += 1
            } else if byte == UInt8(ascii: "#") {
                while position < bytes.count, bytes[position] != UInt8(ascii: "\n") { position += 1 }
            } else {
                return
            }
        }
    }

    /// After a statement only spaces and a comment may follow on the line.
    private mutating func expectEndOfLine() -> String? {
        skipSpaces()
        guard position < bytes.count else { return nil }
        if bytes[position] == UInt8(ascii: "\n") || bytes[position] == UInt8(ascii: "#") { return nil }
        return "unexpected \"\(restOfLinePreview())\" after the value; one key = value per line"
    }

    /// When a line of an array opened on `startLine` (the parser at its first byte) is a section
    /// header (`[name]`) or a key (`name =`): the ] was forgotten. The problem is the array's,
    /// at its line, and this line is read next as what it is (it was "arrays inside arrays are
    /// not supported" at the header, which was then skipped with its section).
    private mutating func unclosedArray(_ startLine: Int) -> ConfigurationProblem? {
        var end = position
        func skip(_ accept: (UInt8) -> Bool) { while end < bytes.count, accept(bytes[end]) { end += 1 } }
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let header = bytes[end] == UInt8(ascii: "[")
        if header { end += 1 }
        skip(isSpace)
        let word = end
        skip(Self.isWordByte)
        guard end > word else { return nil }
        skip(isSpace)
        guard end < bytes.count, bytes[end] == UInt8(ascii: header ? "]" : "=") else { return nil }
        resumeAtPosition = true
        return ConfigurationProblem(
            line: startLine,
            message:
                "the array has no closing ] (line \(line) starts a new \(header ? "section" : "key")); close it with ]")
    }

    private mutating func skipRestOfLine() {
        while position < bytes.count, bytes[position] != UInt8(ascii: "\n") { position += 1 }
    }

    private func restOfLinePreview() -> String {
        var end = position
        while end < bytes.count, bytes[end] != UInt8(ascii: "\n"), end - position < 40 { end += 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(filter { $0 != "_" })
    }

    /// Whether every underscore has a digit (a hexadecimal one after 0x) on each side.
    fileprivate var hasUnderscoresBetweenDigits: Bool {
        let characters = Array(self)
        for (index, character) in characters.enumerated() where character == "_" {
            guard index > 0, index + 1 < characters.count, characters[index - 1].isASCII,
                characters[index - 1].isHexDigit, characters[index + 1].isASCII, characters[index + 1].isHexDigit
            else { return false }
        }
        return true
    }

    /// The word as a problem shows it: whole when short, else its start and its length (a
    /// 100,000-digit value filled the terminal and the journal).
    var shownInProblem: String {
        count <= 40 ? self : "\(prefix(32))... (\(count) characters)"
    }
}
