import ArgumentParser
import Foundation
import ZeroMQ

/// zpub-bench: measures zpubd against libzmq's zmq_proxy, a plain poll loop and a direct link,
/// with the same clients and counts, over TCP on loopback.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zpub-bench",
        abstract: "Benchmark zpubd against zmq_proxy, a plain poll loop and a direct link (loopback TCP).",
        subcommands: [RunMatrix.self, SaturatedCommand.self, CacheCommand.self, ProxyCommand.self, LoopCommand.self],
        defaultSubcommand: RunMatrix.self
    )
}

/// The benchmark itself.
struct RunMatrix: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the benchmark matrix and print Markdown tables.")

    @Flag(
        help:
            "The short matrix (about 2 minutes with the saturated section): PUSH and PUB ingest (zmq_proxy XSUB -> XPUB is the baseline for PUB), 1 and 8 subscribers, 2 repetitions."
    )
    var quick = false

    @Option(help: ArgumentHelp("Repetitions of each run (default: 3, or 2 with --quick).", valueName: "n"))
    var repetitions: Int?

    @Option(help: ArgumentHelp("The zpubd to measure (default: next to zpub-bench).", valueName: "path"))
    var zpubd: String?

    @Option(help: ArgumentHelp("Also write the report to this file.", valueName: "path"))
    var output: String?

    @Flag(help: "Skip the saturated, subscription scaling and idle memory measurements.")
    var matrixOnly = false

    @Option(
        help: ArgumentHelp(
            "libzmq I/O threads of every forwarder (zpubd's io_threads; the baselines' context).", valueName: "n"))
    var ioThreads = 1

    @Option(
        help: ArgumentHelp(
            "Subscriber counts instead of the matrix's, comma-separated (e.g. 1,8,64,512).", valueName: "list"))
    var subscribers: String?

    @Option(
        help: ArgumentHelp("Message sizes instead of the matrix's, comma-separated (e.g. 32,1024).", valueName: "list"))
    var sizes: String?

    func validate() throws {
        guard (1...64).contains(ioThreads) else { throw ValidationError("--io-threads: 1 to 64") }
        if let forwarderNice, !(-20...19).contains(forwarderNice) {
            throw ValidationError("--forwarder-nice: -20 (highest priority) to 19 (lowest), as nice(1) takes")
        }
        for (name, list) in [("--subscribers", subscribers), ("--sizes", sizes)] {
            guard let list else { continue }
            guard let values = Self.integers(list), values.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("\(name): positive integers separated by commas, e.g. 1,8,64")
            }
        }
    }

    static func integers(_ list: String) -> [Int]? {
        let values = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return values.isEmpty || values.contains(nil) ? nil : values.compactMap { $0 }
    }

    /// Off by default: pinned on two cores, the clients saturate their CPU and every forwarder is
    /// held to their pace, so all look alike; unpinned, the forwarder is the bottleneck and its
    /// own cost shows (broker CPU per delivery).
    @Flag(
        inversion: .prefixedNo,
        help:
            "Pin the clients to CPU 0 and each forwarder to CPU 1 (needs two CPUs; taskset). Off by default: pinned, the clients are the bottleneck."
    )
    var pin = false

    /// A forwarder with a lower priority than the clients gets the CPU only when they wait on it
    /// (the producer at its HWM, the receiver with nothing to read), so it should find fuller
    /// queues at every poll and set the pace. Measured on two cores (docs/performance.md), it did
    /// not saturate the forwarders: kept to repeat that measurement.
    @Option(
        name: .customLong("forwarder-nice"),
        help: ArgumentHelp(
            "Run each forwarder with this nice value, -20 to 19 (nice(1); 19 is the lowest priority), so that the clients run first. Unset by default.",
            valueName: "n")
    )
    var forwarderNice: Int?

    func run() throws {
        var matrix = quick ? Matrix.quick : Matrix.full
        if let repetitions { matrix.repetitions = max(1, repetitions) }
        if let list = subscribers.flatMap(Self.integers) { matrix.subscriberCounts = list }
        if let list = sizes.flatMap(Self.integers) { matrix.sizes = list }
        var programs = try Programs.locate(zpubd: zpubd)
        programs.ioThreads = ioThreads
        let pinned = pin && ProcessInfo.processInfo.activeProcessorCount >= 2 && Affinity.pinCurrentThread(to: 0)
        if pinned { programs.brokerCPUs = "1" }
        programs.forwarderNice = forwarderNice
        let started = Time.now()
        let (results, matrixFailures) = MatrixRunner.run(matrix, programs: programs)
        var failures = matrixFailures
        var sections = [
            "## Forwarding (\(matrix.repetitions) repetitions; median, min-max)", "",
            Report.matrixTable(matrix, results), "",
            "## Summary: zpubd with \(matrix.topicCounts.last ?? 1) topics against zmq_proxy (ratio)", "",
            Report.summaryTable(matrix, results), "",
        ]
        if !matrixOnly {
            // Where the broker is the bottleneck, which the live matrix on two cores is not
            // (docs/performance.md, "Saturated"): up to 1 KiB and 8 subscribers.
            let workloads = matrix.workloads.filter { $0.size <= 1024 && $0.subscribers <= 8 }
            let variants = SaturatedRunner.variants(topicCounts: matrix.topicCounts)
            let repetitions = quick ? 1 : matrix.repetitions
            let (saturated, saturatedFailures) = SaturatedRunner.run(
                workloads: workloads, variants: variants, repetitions: repetitions, programs: programs,
                messages: { SaturatedRunner.messageCount($0, deliveries: quick ? 200_000 : nil) })
            failures += saturatedFailures
            sections += [
                "## Saturated: each forwarder working through a backlog (\(repetitions) repetitions; median, min-max)",
                "",
                SaturatedRunner.table(workloads: workloads, variants: variants, results: saturated), "",
            ]
            let scaling = SubscriptionScaling.run(matrix, programs: programs)
            sections += [
                "## Subscription table size (batches of \(matrix.subscriptionBatch))", "",
                SubscriptionScaling.table(scaling), "",
                "## Idle memory", "", IdleMemory.measure(programs: programs), "",
            ]
        }
        sections.append(
            "libzmq \(Context.libraryVersion.major).\(Context.libraryVersion.minor).\(Context.libraryVersion.patch), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(pinned ? "clients on CPU 0, forwarder on CPU 1" : "not pinned"),\(forwarderNice.map { " forwarders at nice \($0)," } ?? "") \(ioThreads) I/O thread(s) per forwarder, \(Int(Time.seconds(Time.now() - started))) s."
        )
        let report = sections.joined(separator: "\n")
        try Report.emit(report, to: output)
        if failures > 0 {
            throw ValidationError("\(failures) run(s) failed; see the messages above")
        }
    }
}

/// What the baselines share with zpubd's settings: I/O threads, and the outgoing queue
/// (`scripts/callgrind-forwarders.sh` lifts it: under valgrind the threads take turns).
struct BaselineOptions: ParsableArguments {
    @Option(help: ArgumentHelp("libzmq I/O threads.", valueName: "n"))
    var ioThreads: Int32 = 1

    @Option(help: ArgumentHelp("The outgoing socket's send HWM (0: unlimited, as under valgrind).", valueName: "n"))
    var sendHwm: Int32 = 10_000

    @Option(help: ArgumentHelp("The ingest socket's receive HWM (0: unlimited).", valueName: "n"))
    var receiveHwm: Int32 = 10_000

    @Option(
        help: ArgumentHelp(
            "Bind a PAIR here that takes TERMINATE (hold: stop reading, answer HELD) and RESUME (answer RUNNING), for `zpub-bench saturated`.",
            valueName: "endpoint"))
    var control: String?

    var highWaterMarks: HighWaterMarks { HighWaterMarks(receive: receiveHwm, send: sendHwm) }
}

/// `zmq_proxy` in its own process: the reference.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Run libzmq's zmq_proxy: XSUB -> XPUB, or PULL -> PUB.")

    @Option(help: ArgumentHelp("pull or xsub.", valueName: "type"))
    var frontendType = "xsub"

    @Option(help: ArgumentHelp("Endpoint the frontend binds.", valueName: "endpoint"))
    var frontend: String

    @Option(help: ArgumentHelp("Endpoint the backend (XPUB, or PUB after a PULL) binds.", valueName: "endpoint"))
    var backend: String

    @OptionGroup var options: BaselineOptions

    func validate() throws {
        guard ["pull", "xsub"].contains(frontendType) else { throw ValidationError("--frontend-type: pull or xsub") }
    }

    func run() throws {
        try ProxyBaseline.run(
            frontendType: frontendType == "pull" ? .pull : .xsub, frontend: frontend, backend: backend,
            ioThreads: options.ioThreads, highWaterMarks: options.highWaterMarks, control: options.control)
    }
}

/// The plain poll loop in its own process: what zpubd is without its bookkeeping.
struct LoopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loop", abstract: "Run a plain zmq_poll loop PULL+XSUB -> XPUB.")

    @Option(help: ArgumentHelp("Endpoint the PULL binds.", valueName: "endpoint"))
    var pull: String

    @Option(help: ArgumentHelp("Endpoint the XSUB binds.", valueName: "endpoint"))
    var xsub: String

    @Option(help: ArgumentHelp("Endpoint the XPUB binds.", valueName: "endpoint"))
    var xpub: String

    @OptionGroup var options: BaselineOptions

    func run() throws {
        try PollLoop.run(
            pull: pull, xsub: xsub, xpub: xpub, ioThreads: options.ioThreads, highWaterMarks: options.highWaterMarks,
            control: options.control)
    }
}
