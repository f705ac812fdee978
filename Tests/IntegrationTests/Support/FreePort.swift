import Foundation

/// TCP ports for tests that need one (most use ipc endpoints in their own directory).
enum FreePort {
    /// Ports already handed out in this test run: the kernel may offer a just-released port
    /// again, and two endpoints of one daemon on the same port fail its configuration check.
    nonisolated(unsafe) private static var handedOut = Set<Int>()
    private static let lock = NSLock()

    /// A TCP port on 127.0.0.1 that was free a moment ago, never the same twice in one run;
    /// below the kernel's ephemeral range when there is room there, so that no outgoing
    /// connection (a client reconnecting somewhere) takes it as its local port before the
    /// daemon binds it (zpub-bench's run once failed so, with a port the kernel had picked).
    static func find() throws -> Int {
        let ephemeral = ephemeralLowerBound
        for attempt in 0..<200 {
            // A hundred tries below the range, then the kernel's picks.
            let candidate = ephemeral > 11_000 && attempt < 100 ? Int.random(in: 10_000..<ephemeral) : 0
            guard let port = bindable(candidate) else { continue }
            let isNew = lock.withLock { handedOut.insert(port).inserted }
            if isNew && claimedAcrossTheRun(port) { return port }
        }
        throw TimedOut(what: "a free port not handed out before")
    }

    /// Where every suite of this run claims its ports (scripts/test.sh runs two suites at a
    /// time, each in a process of its own, and names the run in ZPUB_TEST_RUN): one file a
    /// port, created exclusively. Without it, two suites could both find a port free before
    /// either bound it.
    private static let runDirectory: String? = {
        guard let run = ProcessInfo.processInfo.environment["ZPUB_TEST_RUN"], !run.isEmpty else { return nil }
        let path = "/tmp/zpub-test-ports-\(run)"
        mkdir(path, 0o700)  // made by the first suite to ask; the others find it
        return path
    }()

    /// False when another suite of this run claimed `port` already.
    private static func claimedAcrossTheRun(_ port: Int) -> Bool {
        guard let directory = runDirectory else { return true }
        let descriptor = open("\(directory)/\(port)", O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard descriptor >= 0 else { return errno != EEXIST }
        close(descriptor)
        return true
    }

    /// Where the kernel's local ports for outgoing connections start (`ip_local_port_range`).
    private static let ephemeralLowerBound: Int = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
    }()

    /// `port` (0: one the kernel picks) if it can be bound on 127.0.0.1 now.
    private static func bindable(_ port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        return result ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }
}
