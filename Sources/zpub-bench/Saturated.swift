import ArgumentParser
import Foundation
import ZeroMQ

/// `zpub-bench saturated`: each forwarder measured while it is the bottleneck.
///
/// On two cores a forwarder fed live shares the machine with a producer and a receiver that
/// cost about as much as it does, so it waits for them between bursts and its CPU per delivery
/// depends on their pace (docs/performance.md). Here the forwarder is held (it reads nothing),
/// a backlog is queued in front of it with unlimited queues, and it is let go: until the backlog
/// is gone, every poll finds a full queue and nothing it sends is dropped. Its CPU time is
/// counted from the first message queued to the last one delivered, so libzmq's I/O thread
/// taking the messages in counts too.
struct SaturatedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saturated",
        abstract:
            "Measure each forwarder working through a backlog: broker CPU per delivery where it is the bottleneck."
    )

    @Option(help: ArgumentHelp("Repetitions of each run.", valueName: "n"))
    var repetitions = 3

    @Option(help: ArgumentHelp("Message sizes, comma-separated.", valueName: "list"))
    var sizes = "32,1024"

    @Option(help: ArgumentHelp("Subscriber counts, comma-separated.", valueName: "list"))
    var subscribers = "1,8"

    @Option(help: ArgumentHelp("push, pub or both (comma-separated).", valueName: "list"))
    var ingest = "push,pub"

    @Option(
        help: ArgumentHelp(
            "Distinct topics zpubd with accounting is fed, comma-separated (the baselines never look at topics).",
            valueName: "list"))
    var topics = "1,10000"

    @Option(
        help: ArgumentHelp(
            "Deliveries (messages x subscribers) per run; default 1,000,000 up to 256 bytes, 300,000 below 64 KiB, 20,000 from 64 KiB; at most 256 MiB of payload is queued, whatever is asked.",
            valueName: "n"))
    var deliveries: Int?

    @Option(
        help: ArgumentHelp(
            "Forwarders to run, comma-separated: proxy, loop, zpubd-off, zpubd-on (default: all).", valueName: "list"))
    var forwarders = "proxy,loop,zpubd-off,zpubd-on"

    @Option(help: ArgumentHelp("libzmq I/O threads of every forwarder.", valueName: "n"))
    var ioThreads = 1

    @Option(help: ArgumentHelp("The zpubd to measure (default: next to zpub-bench).", valueName: "path"))
    var zpubd: String?

    @Option(help: ArgumentHelp("Also write the report to this file.", valueName: "path"))
    var output: String?

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions: at least 1") }
        guard (1...64).contains(ioThreads) else { throw ValidationError("--io-threads: 1 to 64") }
        // 16 bytes at least: each payload carries its send time and the phase's token.
        guard let sizeList = RunMatrix.integers(sizes), sizeList.allSatisfy({ $0 >= 16 }) else {
            throw ValidationError("--sizes: sizes of at least 16 bytes separated by commas, e.g. 32,1024")
        }
        for (name, list) in [("--subscribers", subscribers), ("--topics", topics)] {
            guard let values = RunMatrix.integers(list), values.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("\(name): positive integers separated by commas, e.g. 1,8")
            }
        }
        guard ingests != nil else { throw ValidationError("--ingest: push, pub, or push,pub") }
        let chosen = forwarderNames
        guard !chosen.isEmpty, chosen.allSatisfy(Self.forwarderNames.contains) else {
            throw ValidationError("--forwarders: some of \(Self.forwarderNames.joined(separator: ", "))")
        }
        if let deliveries, deliveries < 1_000 {
            throw ValidationError("--deliveries: at least 1000 (a smaller backlog is gone before it is measured)")
        }
    }

    private var ingests: [Ingest]? {
        let values = ingest.split(separator: ",").map { Ingest(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        return values.isEmpty || values.contains(nil) ? nil : values.compactMap { $0 }
    }

    private static let forwarderNames = SaturatedRunner.forwarderNames
    private var forwarderNames: [String] {
        forwarders.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    func run() throws {
        var programs = try Programs.locate(zpubd: zpubd)
        programs.ioThreads = ioThreads
        let topicCounts = RunMatrix.integers(topics) ?? [1]
        let variants = SaturatedRunner.variants(topicCounts: topicCounts, chosen: Set(forwarderNames))
        var workloads: [Workload] = []
        for ingest in ingests ?? [.push] {
            for size in RunMatrix.integers(sizes) ?? [] {
                for count in RunMatrix.integers(subscribers) ?? [] {
                    workloads.append(Workload(size: size, subscribers: count, ingest: ingest))
                }
            }
        }

        let started = Time.now()
        let (results, failures) = SaturatedRunner.run(
            workloads: workloads, variants: variants, repetitions: repetitions, programs: programs,
            messages: messageCount)
        let report = [
            "## Saturated: each forwarder working through a backlog (\(repetitions) repetitions; median, min-max)", "",
            SaturatedRunner.table(workloads: workloads, variants: variants, results: results), "",
            "libzmq \(Context.libraryVersion.major).\(Context.libraryVersion.minor).\(Context.libraryVersion.patch), \(ProcessInfo.processInfo.activeProcessorCount) cores, not pinned, \(ioThreads) I/O thread(s) per forwarder, unlimited queues, \(Int(Time.seconds(Time.now() - started))) s.",
        ].joined(separator: "\n")
        try Report.emit(report, to: output)
        if failures > 0 { throw ValidationError("\(failures) run(s) failed; see the messages above") }
    }

    /// Messages in one backlog: the delivery budget shared by the subscribers.
    private func messageCount(_ workload: Workload) -> Int {
        SaturatedRunner.messageCount(workload, deliveries: deliveries)
    }
}

/// Runs backlog measurements (`zpub-bench saturated`, and `run` without --matrix-only) and
/// formats them.
enum SaturatedRunner {
    typealias Results = [Workload: [Variant: [BacklogRun]]]

    /// The names `--forwarders` takes, in the order they run.
    static let forwarderNames = ["proxy", "loop", "zpubd-off", "zpubd-on"]

    /// The baselines with one topic (they never look at topics), zpubd without accounting with
    /// the first topic count, and with accounting for each; those in `chosen`.
    static func variants(topicCounts: [Int], chosen: Set<String> = Set(forwarderNames)) -> [Variant] {
        var variants: [Variant] = []
        if chosen.contains("proxy") { variants.append(Variant(forwarder: .proxy, topics: 1)) }
        if chosen.contains("loop") { variants.append(Variant(forwarder: .loop, topics: 1)) }
        if chosen.contains("zpubd-off") {
            variants.append(Variant(forwarder: .zpubd(accounting: false), topics: topicCounts.first ?? 1))
        }
        if chosen.contains("zpubd-on") {
            variants += topicCounts.map { Variant(forwarder: .zpubd(accounting: true), topics: $0) }
        }
        return variants
    }

    /// Every workload against every variant, `repetitions` times, alternating the order as
    /// `MatrixRunner` does. A run that fails is reported on stderr and left out.
    static func run(
        workloads: [Workload], variants: [Variant], repetitions: Int, programs: Programs,
        messages: (Workload) -> Int
    ) -> (results: Results, failures: Int) {
        let started = Time.now()
        var results: Results = [:]
        var failures = 0
        let total = repetitions * workloads.count * variants.count
        var done = 0
        for repetition in 0..<repetitions {
            for workload in workloads {
                let shift = repetition % variants.count
                var order = Array(variants[shift...] + variants[..<shift])
                if repetition % 2 == 1 { order.reverse() }
                for variant in order {
                    done += 1
                    let prefix =
                        "[saturated \(done)/\(total) \(Int(Time.seconds(Time.now() - started)))s] \(workload) \(variant.forwarder) topics=\(variant.topics)"
                    do {
                        let run = try runOnce(workload, variant, messages: messages(workload), programs: programs)
                        results[workload, default: [:]][variant, default: []].append(run)
                        MatrixRunner.progress(
                            "\(prefix): \(Report.number(run.cpuPerDelivery)) ns CPU/delivery, \(Report.number(run.messagesPerSecond)) msg/s, lost \(run.lost)"
                        )
                    } catch {
                        failures += 1
                        MatrixRunner.progress("\(prefix) FAILED: \(error)")
                    }
                }
            }
        }
        return (results, failures)
    }

    /// Messages in one backlog: `deliveries` (default 1,000,000 up to 256 bytes, 300,000 below
    /// 64 KiB, 20,000 from 64 KiB) shared by the subscribers, at least 1,000, and then at most
    /// 256 MiB of payload (262,144 messages at 1 KiB, 256 at 1 MiB): the queues are unlimited.
    static func messageCount(_ workload: Workload, deliveries: Int? = nil) -> Int {
        let budget =
            deliveries ?? (workload.size <= 256 ? 1_000_000 : workload.size < 65536 ? 300_000 : 20_000)
        let messages = max(1_000, budget / workload.subscribers)
        return min(messages, max(16, Self.payloadCap / max(1, workload.size)))
    }

    static let payloadCap = 256 << 20

    /// One run: a fresh forwarder with unlimited queues, fresh clients, one backlog.
    static func runOnce(_ workload: Workload, _ variant: Variant, messages: Int, programs: Programs) throws
        -> BacklogRun
    {
        let broker = try BrokerProcess(variant.forwarder, ingest: workload.ingest, programs: programs, holdable: true)
        defer { broker.stop() }
        do {
            let hold = try ForwarderHold(broker)
            let session = try ClientSession(
                workload: workload, topicCount: variant.topics, endpoints: broker.endpoints, highWaterMark: 0)
            let phase = try session.backlog(count: messages, hold: hold) { broker.schedulerStatistics }
            return try BacklogRun(workload: workload, phase: phase)
        } catch {
            let running = broker.process.isRunning ? "still running" : "exited"
            throw BenchError("\(error) (\(variant.forwarder) \(running); its log:\n\(broker.logText))")
        }
    }

    static func table(workloads: [Workload], variants: [Variant], results: [Workload: [Variant: [BacklogRun]]])
        -> String
    {
        var lines = [
            "| workload | forwarder | topics | broker CPU ns/delivery | x zmq_proxy | x poll loop | held: taking in | let go: working through | sleeps per 1k deliveries | msg/s per subscriber | x poll loop | lost |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for workload in workloads {
            guard let byVariant = results[workload] else { continue }
            func median(_ variant: Variant, _ value: (BacklogRun) -> Double) -> Double? {
                byVariant[variant].flatMap { $0.isEmpty ? nil : Spread($0.map(value)).median }
            }
            let proxyCPU = median(Variant(forwarder: .proxy, topics: 1), \.cpuPerDelivery)
            let loopCPU = median(Variant(forwarder: .loop, topics: 1), \.cpuPerDelivery)
            let loopRate = median(Variant(forwarder: .loop, topics: 1), \.messagesPerSecond)
            for variant in variants {
                guard let runs = byVariant[variant], !runs.isEmpty else { continue }
                let cpu = Spread(runs.map(\.cpuPerDelivery))
                let rate = Spread(runs.map(\.messagesPerSecond))
                let intake = Spread(runs.map(\.intakePerDelivery)).median
                let drain = Spread(runs.map { $0.cpuPerDelivery - $0.intakePerDelivery }).median
                let lost = runs.reduce(0) { $0 + $1.lost }
                let cells = [
                    "\(workload)", "\(variant.forwarder)", "\(variant.topics)", Report.rateText(cpu),
                    proxyCPU.map { Report.ratio(cpu.median, $0) } ?? "-",
                    loopCPU.map { Report.ratio(cpu.median, $0) } ?? "-",
                    Report.number(intake), Report.number(drain),
                    Report.number(Spread(runs.map(\.sleepsPerThousand)).median), Report.rateText(rate),
                    loopRate.map { Report.ratio(rate.median, $0) } ?? "-", "\(lost)",
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// What one backlog run measured.
struct BacklogRun: Sendable {
    /// The forwarder's CPU (all threads) per delivered message, from the first message queued
    /// to the last delivered, in ns.
    var cpuPerDelivery: Double
    /// The part of it spent while held: libzmq's I/O thread taking the backlog in.
    var intakePerDelivery: Double
    /// The forwarder's threads' sleeps (voluntary context switches) while it worked through the
    /// backlog, per 1,000 deliveries: a thread that catches up with its queue waits to be woken.
    var sleepsPerThousand: Double
    /// Messages per second per subscriber, first to last delivered.
    var messagesPerSecond: Double
    var lost: Int

    init(workload: Workload, phase: PhaseResult) throws {
        guard phase.received > 0 else { throw BenchError("nothing was delivered: see the forwarder's log") }
        guard let cpu = phase.brokerCPUNanoseconds, let intake = phase.intakeCPUNanoseconds else {
            throw BenchError("the forwarder's CPU time was not measured (it needs Linux /proc)")
        }
        cpuPerDelivery = Double(cpu) / Double(phase.received)
        intakePerDelivery = Double(intake) / Double(phase.received)
        sleepsPerThousand = Double(phase.drainSleeps ?? 0) * 1_000 / Double(phase.received)
        let seconds = Time.seconds(phase.elapsedNanoseconds)
        messagesPerSecond = seconds > 0 ? Double(phase.received) / Double(workload.subscribers) / seconds : 0
        lost = phase.lost
    }
}
