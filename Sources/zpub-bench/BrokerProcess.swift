import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where clients connect: the producer to `ingest`, subscribers to `xpub`.
struct Endpoints: Sendable {
    var ingest: String
    var xpub: String
}

/// A forwarder running in its own process (zpubd, zmq_proxy or the poll loop), bound to free
/// loopback ports. Killed with SIGKILL when stopped: none of them keeps state worth a graceful
/// shutdown, and zpubd's shutdown drain would only add time.
final class BrokerProcess {
    let process = Process()
    let endpoints: Endpoints
    let forwarder: Forwarder
    /// zpubd's control socket (REQ/REP), or the baseline's `HoldControl` PAIR when started
    /// `holdable` (none otherwise).
    let controlEndpoint: String
    private let directory: URL

    /// Starts `forwarder` for `ingest`, waits until its ports accept connections. `holdable`:
    /// for `zpub-bench saturated`, unlimited queues (a backlog waits in front of the forwarder
    /// and behind it, nothing is dropped) and, for the baselines, a control PAIR to hold them by.
    init(
        _ forwarder: Forwarder, ingest: Ingest, programs: Programs, maxSubscriptions: Int = 200_000,
        holdable: Bool = false
    ) throws {
        self.forwarder = forwarder
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ports = try FreePort.pick(distinct: 4)
        let (pull, xsub, xpub, control) = (ports[0], ports[1], ports[2], ports[3])
        let local = { (port: Int) in "tcp://127.0.0.1:\(port)" }
        endpoints = Endpoints(ingest: local(ingest == .push ? pull : xsub), xpub: local(xpub))
        controlEndpoint = local(control)
        let baselineHold = holdable ? ["--receive-hwm", "0", "--send-hwm", "0", "--control", local(control)] : []

        switch forwarder {
        case .zpubd, .zpubdHistory:
            let config = directory.appendingPathComponent("zpubd.conf")
            var text = BrokerProcess.zpubdConfiguration(
                pull: local(pull), xsub: local(xsub), xpub: local(xpub), control: local(control),
                accounting: forwarder != .zpubd(accounting: false), maxSubscriptions: maxSubscriptions,
                ioThreads: programs.ioThreads, unlimitedQueues: holdable)
            if forwarder == .zpubdHistory {
                // Every benchmark topic starts with "t" (the warm-up's and end markers' too).
                text += "[history]\nprefixes = [\"t\"]\ndirectory = \"\(directory.path)/state\"\n"
            }
            try text.write(to: config, atomically: true, encoding: .utf8)
            process.executableURL = programs.zpubd
            process.arguments = ["--config", config.path]
        case .proxy:
            process.executableURL = programs.bench
            process.arguments =
                [
                    "proxy", "--frontend-type", ingest == .push ? "pull" : "xsub",
                    "--frontend", endpoints.ingest, "--backend", local(xpub), "--io-threads", "\(programs.ioThreads)",
                ] + baselineHold
        case .loop:
            process.executableURL = programs.bench
            process.arguments =
                [
                    "loop", "--pull", local(pull), "--xsub", local(xsub), "--xpub", local(xpub),
                    "--io-threads", "\(programs.ioThreads)",
                ] + baselineHold
        case .direct:
            preconditionFailure("direct runs have no broker process")
        }
        if let cpus = programs.brokerCPUs {
            process.arguments = ["-c", cpus, process.executableURL!.path] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        }
        if let nice = programs.forwarderNice {
            process.arguments = ["-n", "\(nice)", process.executableURL!.path] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
        }
        let log = directory.appendingPathComponent("log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let deadline = Time.now() + 10_000_000_000
        for port in [ingest == .push ? pull : xsub, xpub] {
            while !FreePort.accepts(port) {
                guard process.isRunning, Time.now() < deadline else {
                    stop()
                    throw BenchError("\(forwarder) did not start listening on port \(port); its log:\n\(logText)")
                }
                Time.sleep(milliseconds: 2)
            }
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var logText: String {
        (try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)) ?? ""
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// CPU time all of the forwarder's threads have used so far (libzmq's I/O thread included),
    /// in nanoseconds: the run time in each thread's /proc schedstat, which the scheduler keeps
    /// to the nanosecond (the tick counts in /proc/PID/stat are 10 ms apart, too coarse for a
    /// run of a fraction of a second).
    var cpuNanoseconds: UInt64? { schedulerStatistics?.runNanoseconds }

    /// Run time and sleeps, summed over the forwarder's threads; nil once it has exited.
    var schedulerStatistics: SchedulerStatistics? {
        guard process.isRunning else { return nil }
        return SchedulerStatistics(processIdentifier: process.processIdentifier)
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    var peakRSSKiB: Int? { status("VmHWM:") }
    /// Current resident set size (VmRSS), in KiB.
    var currentRSSKiB: Int? { status("VmRSS:") }
    /// The anonymous part of the RSS (heap, stacks), in KiB: what the process itself allocated,
    /// as opposed to the pages of its executable and shared libraries (RssFile).
    var anonymousRSSKiB: Int? { status("RssAnon:") }
    var fileRSSKiB: Int? { status("RssFile:") }

    private func status(_ key: String) -> Int? {
        guard process.isRunning,
            let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)
        else { return nil }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
        return Int(line.dropFirst(key.count).trimmingCharacters(in: .whitespaces).split(separator: " ")[0])
    }

    /// zpubd's configuration: the sample's defaults, except the endpoints, topic accounting, a
    /// quiet log, and room for the subscription scaling measurement (100,000 prefixes plus
    /// the batches it adds on top).
    static func zpubdConfiguration(
        pull: String, xsub: String, xpub: String, control: String, accounting: Bool, maxSubscriptions: Int,
        ioThreads: Int = 1, unlimitedQueues: Bool = false
    ) -> String {
        let queues = unlimitedQueues ? "send_hwm = 0\nreceive_hwm = 0\n" : ""
        return """
            [daemon]
            log_level = "warning"
            topic_accounting = \(accounting)

            [endpoints]
            control = ["\(control)"]
            xpub = ["\(xpub)"]
            pull = ["\(pull)"]
            xsub = ["\(xsub)"]

            [sockets]
            io_threads = \(ioThreads)
            \(queues)
            [limits]
            max_subscriptions = \(maxSubscriptions)

            """
    }
}

/// What the scheduler counted for a process's threads (Linux /proc).
struct SchedulerStatistics: Sendable {
    var runNanoseconds: UInt64 = 0
    /// Voluntary context switches: times a thread waited (a poll with nothing to do, a lock),
    /// not counting preemptions.
    var sleeps: UInt64 = 0

    /// Sums every thread of `processIdentifier` (but `excludedThread`): the run time in each
    /// thread's schedstat and the voluntary_ctxt_switches in its status. Nil when /proc has no
    /// such process.
    init?(processIdentifier: Int32, excludedThread: Int32? = nil) {
        let tasks = "/proc/\(processIdentifier)/task"
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return nil }
        for thread in threads where thread != excludedThread.map(String.init) {
            // schedstat: "run time (ns) wait time (ns) timeslices"
            if let text = try? String(contentsOfFile: "\(tasks)/\(thread)/schedstat", encoding: .utf8),
                let run = text.split(separator: " ").first.flatMap({ UInt64($0) })
            {
                runNanoseconds += run
            }
            if let text = try? String(contentsOfFile: "\(tasks)/\(thread)/status", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") }),
                let count = UInt64(
                    line.dropFirst("voluntary_ctxt_switches:".count).trimmingCharacters(in: .whitespaces))
            {
                sleeps += count
            }
        }
    }
}

/// The programs the benchmark starts, and where they run.
struct Programs: Sendable {
    var zpubd: URL
    var bench: URL
    /// CPUs the forwarder processes are pinned to (with taskset), nil for no pinning.
    var brokerCPUs: String?
    /// The nice value each forwarder runs with (nice(1)), nil for the clients' own.
    var forwarderNice: Int?
    /// libzmq I/O threads of each forwarder.
    var ioThreads = 1

    /// zpubd next to this executable (both in .build/release), unless given.
    static func locate(zpubd: String?) throws -> Programs {
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let zpubdURL =
            zpubd.map { URL(fileURLWithPath: $0) } ?? bench.deletingLastPathComponent().appendingPathComponent("zpubd")
        guard FileManager.default.isExecutableFile(atPath: zpubdURL.path) else {
            throw BenchError("no zpubd at \(zpubdURL.path): run `swift build -c release` first, or pass --zpubd")
        }
        return Programs(zpubd: zpubdURL, bench: bench, brokerCPUs: nil)
    }
}

/// Loopback TCP ports: a free one to bind, and whether one accepts connections yet.
enum FreePort {
    /// A port on 127.0.0.1 that nobody used a moment ago, below the kernel's ephemeral range
    /// when there is room there. A port from that range (what binding port 0 gives) can be
    /// taken, between this pick and the forwarder's bind, as the local port of any outgoing
    /// connection: the previous run's clients reconnecting, or the probes that wait for the
    /// forwarder (a test run once failed so: "bind XSUB ...: Address already in use").
    static func pick() throws -> Int {
        let ephemeral = EphemeralPorts.range
        if ephemeral.lowerBound > 11_000 {
            for _ in 0..<100 {
                let port = Int.random(in: 10_000..<ephemeral.lowerBound)
                if let free = try bindable(port) { return free }
            }
        }
        guard let port = try bindable(0) else {
            throw BenchError("cannot bind an ephemeral loopback port: errno \(errno)")
        }
        return port
    }

    /// `count` different ports from `pick`: random picks may repeat (a run failed when pull and
    /// xpub got the same one: "given for both pull and xpub").
    static func pick(distinct count: Int) throws -> [Int] {
        var ports: [Int] = []
        while ports.count < count {
            let port = try pick()
            if !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    /// `port` (0: one the kernel picks) if it can be bound on 127.0.0.1 now.
    private static func bindable(_ port: Int) throws -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket(): errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// True when something listens on 127.0.0.1:`port`.
    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }
}

/// The kernel's range of local ports for outgoing connections (`ip_local_port_range`).
enum EphemeralPorts {
    static let range: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { return 32_768..<61_000 }
        return bounds[0]..<(bounds[1] + 1)
    }()
}

/// A failure that ends the benchmark, with what to do about it.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
