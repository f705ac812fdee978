import ArgumentParser
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// zpub: publish, subscribe and inspect a running zpubd, in the manner of redis-cli,
/// nats and mosquitto_pub/sub.
@main
struct ZPubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zpub",
        abstract: "Publish to, subscribe from and inspect a zpubd broker.",
        discussion: """
            Endpoints default to zpubd's own defaults (loopback):
              control tcp://127.0.0.1:5555   xpub tcp://127.0.0.1:5556
              pull    tcp://127.0.0.1:5557   xsub tcp://127.0.0.1:5558

            Every command that asks a broker gives up after --timeout instead of waiting \
            for one that is not there; sub waits for messages for as long as it runs, \
            unless given --timeout.
            """,
        version: ZPubVersion.current,
        subcommands: [
            Publish.self, Subscribe.self, Stats.self, Health.self, Subscriptions.self, Topics.self, Ping.self,
            ShowConfig.self, Reload.self, Pause.self, Resume.self, KeyGen.self, Top.self, History.self,
        ]
    )

    /// ArgumentParser suggests a mistyped option, not a mistyped command ("Unexpected argument
    /// 'stat'"): that one is answered here, with the command meant.
    static func main() {
        if let message = argumentNotUTF8() {
            Output.error(message)
            Glibc.exit(64)
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        // `zpub help frobnicate` printed the general help and exited 0.
        let word = arguments.first == "help" ? arguments.dropFirst().first : arguments.first
        if let word, !word.hasPrefix("-"), word != "help", let message = unknownCommand(word) {
            Output.error(message)
            Glibc.exit(64)  // EX_USAGE, as ArgumentParser's own usage errors
        }
        if let message = dashedPayload(arguments) {
            Output.error(message)
            Glibc.exit(64)
        }
        main(countsSeparated(arguments))
    }

    /// `arguments` with a count written onto its option (`zpub sub -n1`, as `head -n1` and
    /// `mosquitto_sub -C1` take it) split into the option and its value: ArgumentParser took
    /// the next argument for the count ("The value '-e' is invalid for '-n <N>'"). For the
    /// commands whose -n takes a number (sub, top), up to a `--`.
    static func countsSeparated(_ arguments: [String]) -> [String] {
        guard let command = arguments.first, ["sub", "top"].contains(command) else { return arguments }
        var separated = [command]
        var rest = arguments.dropFirst()
        while let argument = rest.popFirst() {
            if argument == "--" {
                separated += [argument] + rest
                break
            }
            let digits = argument.dropFirst(2)
            if argument.hasPrefix("-n") && !digits.isEmpty && digits.allSatisfy(\.isASCII)
                && digits.allSatisfy(\.isNumber)
            {
                separated += ["-n", String(digits)]
            } else {
                separated.append(argument)
            }
        }
        return separated
    }

    /// What to say when `zpub pub` is given a frame that starts with "-" and a digit (a
    /// negative reading: `zpub pub weather.oslo -5`), which ArgumentParser took for an unknown
    /// option ("Unknown option '-5'"), with no word of `--`; nil otherwise. No option of zpub
    /// starts so, and redis-cli and mosquitto_pub take such a value as it is.
    static func dashedPayload(_ arguments: [String]) -> String? {
        guard arguments.first == "pub" else { return nil }
        var previous = ""
        for argument in arguments.dropFirst() {
            if argument == "--" { return nil }
            defer { previous = argument }
            // The value of the option before it (`--timeout -5`): that option says what is wrong.
            if previous.hasPrefix("-") && !previous.contains("=") { continue }
            guard argument.count > 1, argument.hasPrefix("-"),
                argument.dropFirst().first.map({ $0.isNumber || $0 == "." }) == true
            else { continue }
            return
                "'\(argument)' looks like a frame that starts with '-', which zpub would read as an option: put -- before the topic and frames (zpub pub [options] -- TOPIC \(argument))"
        }
        return nil
    }

    /// What to say of the first argument that is not UTF-8, or nil. Swift hands arguments over
    /// as strings, repairing what is not UTF-8 with U+FFFD: `zpub pub $'caf\\xe9' x` published
    /// "caf\u{FFFD}" and `zpub sub $'\\xff'` subscribed to EF BF BD, with exit 0.
    static func argumentNotUTF8() -> String? {
        for index in 1..<max(1, Int(CommandLine.argc)) {
            guard let pointer = CommandLine.unsafeArgv[index] else { continue }
            let bytes = Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer))).map { UInt8(bitPattern: $0) }
            guard String(validating: bytes, as: UTF8.self) == nil else { continue }
            return
                "argument \(index) (\(Subscribe.escape(bytes))) is not UTF-8 text, and zpub would use it changed. Give topics, frames and prefixes as UTF-8; a binary frame through standard input (zpub pub --file - TOPIC < file; or one frame per line)"
        }
        return nil
    }

    /// Nil for a command zpub has; otherwise what to say, with the likeliest command meant.
    static func unknownCommand(_ word: String) -> String? {
        let names = configuration.subcommands.map { $0._commandName }
        guard !word.isEmpty, !names.contains(word) else { return nil }
        // A command's start ("subs": subscriptions), then the longest command the word starts
        // with ("subscribe": sub), then the nearest by edits, if near.
        let meant =
            names.first { $0.hasPrefix(word) }
            ?? names.filter { word.hasPrefix($0) }.max { $0.count < $1.count }
            ?? names.map { ($0, editDistance($0, word)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
        return "unknown command '\(word)'\(meant.map { "; did you mean '\($0)'?" } ?? "") (zpub --help lists them)"
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        // One row of the table at a time: row i holds the distances from a's first i letters.
        var row = Array(0...b.count)
        for (i, letter) in a.enumerated() {
            var next = [i + 1]
            for (j, other) in b.enumerated() {
                next.append(min(row[j + 1] + 1, next[j] + 1, row[j] + (letter == other ? 0 : 1)))
            }
            row = next
        }
        return row[b.count]
    }
}

/// Where the control socket is and how long to wait for it; shared by the inspection commands.
struct ControlOptions: ParsableArguments {
    // Optional, so that the help shows the default as written here, once ($ZPUB_CONTROL
    // first), not also ArgumentParser's "(default: ...)" of whatever this process found.
    @Option(
        name: [.customShort("c"), .customLong("control")],
        help: ArgumentHelp(
            "The broker's control endpoint (default: $ZPUB_CONTROL, or tcp://127.0.0.1:5555; the packaged service listens on ipc:///run/zpub/control.sock).",
            valueName: "endpoint"))
    var givenControl: String?

    var control: String { controlEndpoint.endpoint }
    var controlEndpoint: ControlEndpoint { .given(givenControl) }

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Give up after this many milliseconds (default 3000; for reload 65000, longer than zpubd waits for a reload).",
            valueName: "ms"))
    var timeout: Int?

    @Flag(
        name: .long,
        help:
            "Print JSON: the broker's reply as it came, an error reply too (top: one line of rates per refresh; history: one object per message; ping: the round trip)."
    )
    var json = false

    @OptionGroup var curve: CurveOptions

    var client: ControlClient { client(defaultTimeout: 3_000) }

    func client(defaultTimeout: Int) -> ControlClient {
        var client = ControlClient(controlEndpoint, timeoutMilliseconds: timeout ?? defaultTimeout, curve: curve)
        // Nothing listening is said at once, as redis-cli and nats say it: `zpub stats` against
        // a stopped broker took the whole --timeout (3 s; a reload's 65) to say what the first
        // refused connection had told.
        client.givingUpWhenRefused = true
        return client
    }

    /// 0 is no time for a reply: every request failed at once ("no reply within 0 ms").
    func validate() throws {
        if let timeout { try Milliseconds.check(timeout, "--timeout", minimum: 1) }
        try EndpointArgument.check(givenControl.map { [$0] } ?? [], "--control")
    }
}

/// Endpoints given on the command line, checked as zpubd checks its own: a wrong one is a
/// wrong command line (exit 64, with the usage), not a broker that is not there (exit 1).
enum EndpointArgument {
    static func check(_ endpoints: [String], _ option: String) throws {
        for (index, endpoint) in endpoints.enumerated() {
            if let problem = Endpoint.problem(with: endpoint) {
                throw ValidationError("\(option) \"\(endpoint)\": \(problem)")
            }
            // One broker given twice: `sub -c A -c A --since 0` followed "2 brokers" and
            // waited for ever for one of them to be the active one.
            if let first = endpoints[..<index].first(where: { Endpoint.sameTarget(endpoint, $0) }) {
                let spelled = first == endpoint ? "" : " (as \"\(first)\" too)"
                throw ValidationError(
                    "\(option) \"\(endpoint)\" is given twice\(spelled): give each broker once (a pair's two brokers: \(option) A \(option) B)"
                )
            }
            // inproc reaches sockets of the same process only: zpub would wait for a broker
            // that can never be there.
            if endpoint.lowercased().hasPrefix("inproc://") {
                throw ValidationError(
                    "\(option) \"\(endpoint)\": inproc reaches only sockets inside one process, and zpubd is another; use its tcp or ipc endpoint"
                )
            }
        }
    }
}

/// The bound on the millisecond options: a day. Past it, what libzmq takes as 32-bit
/// milliseconds and what is slept in microseconds overflow, and a negative value would wait
/// for ever where the option promises to give up.
enum Milliseconds {
    static let maximum = 86_400_000

    static func check(_ value: Int, _ option: String, minimum: Int = 0, maximum: Int = maximum) throws {
        guard (minimum...maximum).contains(value) else {
            let span = maximum == Self.maximum ? " (a day)" : ""
            throw ValidationError("\(option) is \(value); give between \(minimum) and \(maximum) milliseconds\(span)")
        }
    }
}

/// An endpoint from the environment, when set and not empty: for a broker not on the defaults
/// (as nats has `NATS_URL`).
func environmentEndpoint(_ variable: String) -> String? {
    getenv(variable).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
}

/// The data endpoints to connect to: those given with -e, else `$variable` (`ZPUB_XPUB`,
/// `ZPUB_PULL`, `ZPUB_XSUB`), else the default; and the name a malformed one is told by. The
/// variable may name several, separated by white space, as both brokers of a pair are given
/// to the examples (`ZPUB_PULL="tcp://a:5557 tcp://b:5557"`, docs/topologies.md): zpub took
/// that for one endpoint and refused it (an audit).
func dataEndpoints(given: [String], variable: String, fallback: [String]) -> (endpoints: [String], source: String) {
    if !given.isEmpty { return (given, "--endpoint") }
    if let value = environmentEndpoint(variable) {
        let endpoints = value.split(whereSeparator: \.isWhitespace).map(String.init)
        // Spaces alone: told as the malformed value it is, not taken for unset.
        return (endpoints.isEmpty ? [value] : endpoints, variable)
    }
    return (fallback, "--endpoint")
}

/// A control endpoint and what named it, which an error blames (a malformed `$ZPUB_CONTROL` was
/// told as a `--control` never given).
struct ControlEndpoint: Equatable {
    enum Source: String {
        case option = "--control"
        case environment = "$ZPUB_CONTROL"
        case builtIn = "the default control endpoint"
    }

    var endpoint: String
    var source: Source

    /// `-c`, else `$ZPUB_CONTROL`, else the default: where the inspection commands ask.
    static func given(_ given: String?) -> ControlEndpoint {
        if let given { return ControlEndpoint(endpoint: given, source: .option) }
        if let variable = environmentEndpoint("ZPUB_CONTROL") {
            return ControlEndpoint(endpoint: variable, source: .environment)
        }
        return ControlEndpoint(endpoint: BrokerConfiguration.Defaults.controlEndpoints[0], source: .builtIn)
    }

    /// The control endpoint of the broker whose data endpoints a command connects to, when it
    /// is known: `-c`; else, for data endpoints named on the command line (`-e`), none: neither
    /// the environment's broker nor the default one need be that broker. Else
    /// `$ZPUB_CONTROL`, which goes with `$ZPUB_XPUB`, `$ZPUB_PULL` and the defaults (the
    /// broker this shell was set up for); else the default one while the data endpoints are
    /// the defaults too. `zpub pub` (asking the broker's max_message_size) and `zpub sub`
    /// (--ready, --snapshot, --since) both follow it: sub took `$ZPUB_CONTROL` with `-e`, and
    /// would read the environment's broker's cache or history for another's stream.
    static func ofBroker(
        given: String?, endpointsGiven: Bool, dataEndpoints: [String], defaults: [String]
    ) -> ControlEndpoint? {
        if given == nil && endpointsGiven { return nil }
        let control = Self.given(given)
        return control.source == .builtIn && dataEndpoints != defaults ? nil : control
    }
}
