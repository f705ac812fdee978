import ArgumentParser
import Foundation
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

/// `zpub top`: the broker at a glance, refreshed from the control socket, like `top`.
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the broker live: rates in and out, subscriptions, peers, drops, the busiest topics.",
        discussion: """
            Asks for STATS and TOPICS every --interval and shows the rates between two \
            readings.

            Keys: r sorts by messages per second, b by bytes per second, m by messages, u \
            by unwanted messages, t by topic; space refreshes now; q (or Ctrl-C) quits.

            When standard output is not a terminal, prints plain lines instead: one block \
            per refresh, separated by a blank line (with --json, one JSON object per \
            refresh).
            """
    )

    @OptionGroup var options: ControlOptions

    @Option(
        name: [.customShort("s"), .long],
        help: ArgumentHelp(
            "Sort topics by: \(TopSortKey.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "key"))
    var sort: TopSortKey = .rate

    @Option(
        name: [.customShort("d"), .long], parsing: .unconditional,
        help: ArgumentHelp("Refresh every this many milliseconds.", valueName: "ms"))
    var interval = 1_000

    @Option(
        name: [.customShort("n"), .long], parsing: .unconditional,
        help: ArgumentHelp("Exit after this many refreshes (default: run until q).", valueName: "N"))
    var iterations: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Show at most this many topics (plain output: 10).", valueName: "N"))
    var topics: Int?

    @Flag(name: .long, help: "Print plain lines even on a terminal.")
    var plain = false

    func validate() throws {
        if interval < 100 { throw ValidationError("--interval must be at least 100 ms") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        if let topics, topics < 0 { throw ValidationError("--topics cannot be negative") }
    }

    func run() throws {
        // Before any ZeroMQ context exists, so that libzmq's threads inherit the mask.
        let signals = SignalWatcher([SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP])
        var status: Int32 = 0
        try reportingErrors {
            var client = options.client
            // `zpubd & zpub top` (zpubd's manual): the broker's control socket may not be there
            // yet, and top waits for it; the other commands say at once that nothing listens.
            client.givingUpWhenRefused = false
            // Ctrl-C, Ctrl-Z and friends end a wait for the broker at once; a resize waits its turn.
            client.interrupted = { signals.isPending([SIGINT, SIGTERM, SIGHUP, SIGTSTP]) }
            // The first reading fails loudly: a wrong endpoint should not look like an idle broker.
            let first: TopSample
            do {
                first = try Self.read(client)
            } catch is Interrupted {
                status = 128 + (signals.pending() ?? SIGINT)
                return
            }
            if plain || options.json || !Terminal.isOutputTerminal {
                status = runPlain(client, first: first, signals: signals)
            } else {
                status = runLive(client, first: first, signals: signals)
            }
        }
        if status != 0 { throw ExitCode(status) }
    }

    static func read(_ client: ControlClient) throws -> TopSample {
        let (stats, _) = try client.request("STATS", as: StatsSnapshot.self)
        let (topics, _) = try client.request("TOPICS", as: TopicList.self)
        return TopSample(stats: stats, topics: topics)
    }

    /// The full-screen view, until `q`, a signal or --iterations.
    private func runLive(_ client: ControlClient, first: TopSample, signals: SignalWatcher) -> Int32 {
        let terminal = Terminal()
        terminal.enter()
        defer { terminal.restore() }
        var sort = self.sort
        var view = TopView(previous: nil, current: first)
        var problem: String?
        var refreshes = 0
        while true {
            draw(view, on: terminal, endpoint: client.endpoint, sort: sort, problem: problem)
            // A failed reading counts too: -n bounds the run even when the broker is gone.
            if let iterations, refreshes >= iterations { return problem == nil ? 0 : 1 }
            switch waitForNextRefresh(terminal, signals: signals) {
            case .quit(let status): return status
            case .sort(let key):
                sort = key
                continue
            case .refresh:
                break
            }
            do {
                view = TopView(previous: view.sample, current: try Self.read(client))
                problem = nil
                refreshes += 1
            } catch is Interrupted {
                continue  // the signal is taken by the wait that follows the drawing
            } catch {
                problem = "\(error) (retrying)"
                refreshes += 1
            }
        }
    }

    private enum Event {
        case refresh, sort(TopSortKey), quit(Int32)
    }

    /// Waits out the interval, answering keys and signals at once.
    private func waitForNextRefresh(_ terminal: Terminal, signals: SignalWatcher) -> Event {
        let deadline = Date().addingTimeInterval(Double(interval) / 1000)
        while true {
            let remaining = Int(deadline.timeIntervalSinceNow * 1000)
            if remaining <= 0 { return .refresh }
            for key in terminal.keys(waitingUpTo: min(remaining, 100)) {
                if key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") { return .quit(0) }
                if key == UInt8(ascii: " ") { return .refresh }
                if let sort = TopSortKey(key: key) { return .sort(sort) }
            }
            switch signals.pending() {
            case nil: continue
            // A resized terminal is redrawn at once, to its new size.
            case SIGWINCH?: return .refresh
            // Ctrl-Z: give the shell its terminal back while stopped, take it again after.
            case SIGTSTP?:
                terminal.restore()
                kill(getpid(), SIGSTOP)
                terminal.enter()
                return .refresh
            case let signal?: return .quit(128 + signal)
            }
        }
    }

    private func draw(_ view: TopView, on terminal: Terminal, endpoint: String, sort: TopSortKey, problem: String?) {
        let (rows, columns) = Terminal.size()
        let screen = TopScreen(endpoint: endpoint, sort: sort, topicLimit: topics ?? Int.max, problem: problem)
        var (summary, heading, topicRows) = screen.lines(view, width: columns)
        // The summary, a blank line, the heading and the footer; topics get the rest.
        let room = max(0, rows - summary.count - 3)
        if topicRows.count > room {
            // Fewer topics, and room left below them for "... and N more topics" and the
            // untracked line: cut to the room, those fell off the bottom, and the screen never
            // said that topics were hidden (an audit).
            let limit = min(topics ?? Int.max, max(0, room - 2))
            topicRows =
                TopScreen(endpoint: endpoint, sort: sort, topicLimit: limit, problem: problem)
                .lines(view, width: columns).rows
        }
        let shown = Array(topicRows.prefix(room))
        let footer =
            "sorted by \(sort.rawValue) - keys: "
            + TopSortKey.allCases.map { "\($0.key) \($0.rawValue)" }.joined(separator: ", ") + ", q quit"
        let inverse = "\u{1B}[7m"
        let dim = "\u{1B}[2m"
        let normal = "\u{1B}[0m"
        terminal.draw(
            summary + ["", inverse + TopScreen.pad(heading, columns) + normal] + shown
                + Array(repeating: "", count: room - shown.count) + [dim + TopScreen.fit(footer, columns) + normal])
    }

    /// Plain lines for a pipe or a log: each block comes after one interval, so it has rates.
    private func runPlain(_ client: ControlClient, first: TopSample, signals: SignalWatcher) -> Int32 {
        var previous = first
        var refreshes = 0
        var lastFailed = false
        while iterations.map({ refreshes < $0 }) ?? true {
            let deadline = Date().addingTimeInterval(Double(interval) / 1000)
            while Date() < deadline {
                switch signals.pending() {
                case nil, SIGWINCH?: break
                case SIGTSTP?: kill(getpid(), SIGSTOP)
                case let signal?: return 128 + signal
                }
                usleep(useconds_t(min(100, max(1, Int(deadline.timeIntervalSinceNow * 1000)))) * 1_000)
            }
            let next: TopSample
            do {
                next = try Self.read(client)
            } catch is Interrupted {
                continue  // the signal is taken at the top of the loop
            } catch {
                // Counted: -n bounds the run even when the broker is gone (a monitor's
                // `zpub top -n 10 --json` ran for ever), which then ends with status 1.
                Output.error("\(error)\(iterations.map { refreshes + 1 < $0 } ?? true ? " (retrying)" : "")")
                refreshes += 1
                lastFailed = true
                continue
            }
            lastFailed = false
            let view = TopView(previous: previous, current: next)
            previous = next
            refreshes += 1
            if options.json {
                Output.line(TopJSON(view, limit: topics ?? 10, sort: sort).encoded())
                continue
            }
            let screen = TopScreen(endpoint: client.endpoint, sort: sort, topicLimit: topics ?? 10)
            // A pipe has no width to fit: whole lines (at 200, the history line lost its end,
            // and two long topics could print alike: an audit).
            let (summary, heading, rows) = screen.lines(view, width: .max)
            let block = (refreshes > 1 ? [""] : []) + summary + [heading] + rows
            Output.line(block.map(Self.trimmingTrailingSpaces).joined(separator: "\n"))
        }
        return lastFailed ? 1 : 0
    }

    static func trimmingTrailingSpaces(_ line: String) -> String {
        var line = Substring(line)
        while line.last == " " { line = line.dropLast() }
        return String(line)
    }
}

extension TopSortKey: ExpressibleByArgument {}
