import ZPubCore

/// Reads the configuration: the embedded defaults, then the file (if any), then the command
/// line's overrides, then validation. Used at start and again on every SIGHUP.
struct ConfigurationLoader: Sendable {
    struct Overrides: Sendable {
        var pull: [String]
        var xsub: [String]
        var xpub: [String]
        var control: [String]
        var upstream: [String]
        var lastValue: [String]
        var history: [String] = []
        var stateDirectory: String? = nil
        var logLevel: String?
        /// --http host:port: turns the HTTP gateway on at that address.
        var http: String? = nil
        /// --ha-role, --ha-bind, --ha-peer: one of a primary/backup pair.
        var haRole: String? = nil
        var haBind: String? = nil
        var haPeer: String? = nil

        /// Whether any option was given on the command line.
        var anyGiven: Bool {
            !(pull.isEmpty && xsub.isEmpty && xpub.isEmpty && control.isEmpty && upstream.isEmpty && lastValue.isEmpty
                && history.isEmpty) || stateDirectory != nil || logLevel != nil || http != nil || haRole != nil
                || haBind != nil || haPeer != nil
        }
    }

    /// Every problem found, ready to print: one line each, prefixed with the file and line.
    struct Report: Error {
        /// Every problem, one per line, and what to do: for stderr at start.
        let text: String
        /// The problems alone ("file:line: message"), for a refused reload's log line and reply.
        let problems: [String]
    }

    let path: String?
    let overrides: Overrides

    /// The configuration, noting in `overridden` each line of the file that a flag gives another
    /// value, as a reload tells it.
    func load(noting overridden: inout [String]) -> Result<BrokerConfiguration, Report> {
        var configuration = BrokerConfiguration()
        // Where each key was set in the file: the whole is validated once the flags are in
        // (a flag may supply what the file lacks, or replace what it got wrong), and a problem
        // of a key the file set is reported at its line.
        var keyLines: [String: Int] = [:]
        var fileProblems: [ConfigurationProblem] = []
        let source = path ?? "command line"
        if let path {
            let text: String
            do {
                text = try TextFile.read(path)
            } catch {
                let reason = error.reason
                return .failure(
                    Report(
                        text: "zpubd: cannot read the configuration file \(path): \(reason). "
                            + "Check the path, or start without --config to use the embedded defaults.",
                        problems: ["cannot read the configuration file \(path): \(reason)"]))
            }
            (configuration, keyLines, fileProblems) = ConfigurationFile.read(text)
        }
        /// A flag's value replaces the file's: a problem with it is not the file line's, and a
        /// file line it overrode with another value is noted (`overridden`: a reload applies
        /// the rest of the file, and only CONFIG showed that this key was not the file's).
        let fromFile = configuration
        /// `shown`: the key's value as the file writes it; the note carries the file's, so that
        /// a later change of that line is told again (the start's notes count as told).
        func fromFlag(_ key: String, _ flag: String, _ shown: (BrokerConfiguration) -> String) {
            if let line = keyLines[key], shown(fromFile) != shown(configuration) {
                overridden.append(
                    "\(key) = \(shown(fromFile)) (\(source):\(line)) is overridden by the command line's \(flag): the flag's value stays in force"
                )
            }
            keyLines[key] = nil
        }
        func list(_ values: [String]) -> String { "[" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        func text(_ value: String?) -> String { value.map { "\"\($0)\"" } ?? "(unset)" }
        // Flags whose value cannot even be stored: reported with the file's problems (every
        // problem at once, and the same exit status as a bad file: 78 at start, which systemd
        // does not restart in a loop; 1 with --check-config).
        var flagProblems: [String] = []
        if !overrides.pull.isEmpty {
            configuration.pullEndpoints = overrides.pull
            fromFlag("pull", "--pull") { list($0.pullEndpoints) }
        }
        if !overrides.xsub.isEmpty {
            configuration.xsubEndpoints = overrides.xsub
            fromFlag("xsub", "--xsub") { list($0.xsubEndpoints) }
        }
        if !overrides.xpub.isEmpty {
            configuration.xpubEndpoints = overrides.xpub
            fromFlag("xpub", "--xpub") { list($0.xpubEndpoints) }
        }
        if !overrides.control.isEmpty {
            configuration.controlEndpoints = overrides.control
            fromFlag("control", "--control") { list($0.controlEndpoints) }
        }
        if !overrides.upstream.isEmpty {
            configuration.upstreamEndpoints = overrides.upstream
            fromFlag("upstream", "--upstream") { list($0.upstreamEndpoints) }
        }
        if !overrides.lastValue.isEmpty {
            configuration.lastValuePrefixes = overrides.lastValue
            fromFlag("prefixes", "--last-value") { list($0.lastValuePrefixes) }
        }
        if !overrides.history.isEmpty {
            configuration.historyPrefixes = overrides.history
            fromFlag("history_prefixes", "--history") { list($0.historyPrefixes) }
        }
        if let directory = overrides.stateDirectory {
            configuration.stateDirectory = directory
            fromFlag("state_directory", "--state-dir") { text($0.stateDirectory) }
        }
        if let level = overrides.logLevel {
            if BrokerConfiguration.logLevels.contains(level) {
                configuration.logLevel = level
                fromFlag("log_level", "--log-level") { text($0.logLevel) }
            } else {
                flagProblems.append(
                    "--log-level \"\(level)\" is not a log level; use one of \(BrokerConfiguration.logLevels.joined(separator: ", "))"
                )
            }
        }
        if let listen = overrides.http {
            if HTTPSettings.parseListen(listen) != nil {
                configuration.http.enabled = true
                configuration.http.listen = listen
                fromFlag("listen", "--http") { text($0.http.listen) }
            } else {
                flagProblems.append(
                    "--http \"\(listen)\" is not host:port; write e.g. --http 127.0.0.1:8080, [::1]:8080 or 0.0.0.0:8080"
                )
            }
        }

        if let role = overrides.haRole {
            if let parsed = PairSettings.Role(rawValue: role) {
                configuration.pair.role = parsed
                fromFlag("role", "--ha-role") { text($0.pair.role?.rawValue) }
            } else {
                flagProblems.append("--ha-role must be primary or backup, not \"\(role)\"")
            }
        }
        if let bind = overrides.haBind {
            configuration.pair.bind = bind
            fromFlag("bind", "--ha-bind") { text($0.pair.bind) }
        }
        if let peer = overrides.haPeer {
            configuration.pair.peer = peer
            fromFlag("peer", "--ha-peer") { text($0.pair.peer) }
        }

        let problems = ConfigurationFile.allProblems(fileProblems, configuration, keyLines: keyLines)
        if !problems.isEmpty || !flagProblems.isEmpty {
            // A problem of no line (two keys that conflict, a key missing) may be of a flag's
            // value: the file alone was blamed for --xpub set to the file's pull endpoint.
            let whole = path.map { overrides.anyGiven ? "\($0) with the command line's flags" : $0 } ?? source
            let lines = describe(problems, flagProblems: flagProblems, source: source, whole: whole)
            return .failure(Report(text: format(lines), problems: lines))
        }
        return .success(configuration)
    }

    private func describe(_ problems: [ConfigurationProblem], flagProblems: [String], source: String, whole: String)
        -> [String]
    {
        flagProblems.map { "zpubd: \($0)" }
            + problems.map { problem in
                if let line = problem.line { return "\(source):\(line): \(problem.message)" }
                return "\(whole): \(problem.message)"
            }
    }

    private func format(_ problems: [String]) -> String {
        var lines = problems
        let count = problems.count
        lines.append(
            "zpubd: the configuration has \(count) problem\(count == 1 ? "" : "s"), and zpubd starts only with none. Every flag is in zpubd --help, every key is described in zpubd.conf(5) and in the sample zpubd.conf (etc/zpub/ in the source, /usr/share/doc/zpub/examples/ once installed)."
        )
        return lines.joined(separator: "\n")
    }
}
