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
    }

    /// Every problem found, ready to print: one line each, prefixed with the file and line.
    struct Report: Error {
        let text: String
    }

    let path: String?
    let overrides: Overrides

    func load() -> Result<BrokerConfiguration, Report> {
        var configuration = BrokerConfiguration()
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
                            + "Check the path, or start without --config to use the embedded defaults."))
            }
            switch ConfigurationFile.parse(text) {
            case .success(let parsed): configuration = parsed
            case .failure(let problems):
                return .failure(Report(text: format(problems.problems, source: path)))
            }
        }
        if !overrides.pull.isEmpty { configuration.pullEndpoints = overrides.pull }
        if !overrides.xsub.isEmpty { configuration.xsubEndpoints = overrides.xsub }
        if !overrides.xpub.isEmpty { configuration.xpubEndpoints = overrides.xpub }
        if !overrides.control.isEmpty { configuration.controlEndpoints = overrides.control }
        if !overrides.upstream.isEmpty { configuration.upstreamEndpoints = overrides.upstream }
        if !overrides.lastValue.isEmpty { configuration.lastValuePrefixes = overrides.lastValue }
        if !overrides.history.isEmpty { configuration.historyPrefixes = overrides.history }
        if let directory = overrides.stateDirectory { configuration.stateDirectory = directory }
        if let level = overrides.logLevel { configuration.logLevel = level }
        if let listen = overrides.http {
            configuration.http.enabled = true
            configuration.http.listen = listen
        }

        if let role = overrides.haRole {
            guard let parsed = PairSettings.Role(rawValue: role) else {
                return .failure(Report(text: "zpubd: --ha-role must be primary or backup, not \"\(role)\""))
            }
            configuration.pair.role = parsed
        }
        if let bind = overrides.haBind { configuration.pair.bind = bind }
        if let peer = overrides.haPeer { configuration.pair.peer = peer }

        let problems = configuration.validate()
        if !problems.isEmpty {
            return .failure(
                Report(
                    text: format(problems.map { ConfigurationProblem(line: nil, message: $0.message) }, source: source))
            )
        }
        return .success(configuration)
    }

    private func format(_ problems: [ConfigurationProblem], source: String) -> String {
        var lines = problems.map { problem in
            if let line = problem.line { return "\(source):\(line): \(problem.message)" }
            return "\(source): \(problem.message)"
        }
        lines.append(
            "zpubd: the configuration has \(problems.count) problem\(problems.count == 1 ? "" : "s"); nothing was started. The sample etc/zpub/zpubd.conf lists every key."
        )
        return lines.joined(separator: "\n")
    }
}
