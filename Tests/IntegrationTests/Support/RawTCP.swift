import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Plain TCP connections (to 127.0.0.1 unless told), for what no ZeroMQ client would send:
/// garbage, idle connections, hand-written HTTP.
enum RawTCP {
    /// Whether every TCP connection to or from `port` has nothing queued: what was sent has
    /// been read by its receiver's process.
    static func queuesAreEmpty(port: Int) -> Bool {
        guard let data = FileHandle(forReadingAtPath: "/proc/net/tcp")?.readDataToEndOfFile() else { return false }
        let suffix = String(format: ":%04X", port)
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[1].hasSuffix(suffix) || fields[2].hasSuffix(suffix) else { continue }
            if fields[4] != "00000000:00000000" { return false }
        }
        return true
    }

    /// How many established TCP connections `port` has on its side (the listener's).
    static func connections(port: Int) -> Int {
        guard let data = FileHandle(forReadingAtPath: "/proc/net/tcp")?.readDataToEndOfFile() else { return 0 }
        let suffix = String(format: ":%04X", port)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst().filter { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && fields[1].hasSuffix(suffix) && fields[3] == "01"
        }.count
    }

    /// A connected socket's descriptor (the caller closes it). `blocking: false` returns at once,
    /// with the kernel completing the handshake in the background.
    static func connect(port: Int, address: String = "127.0.0.1", blocking: Bool = true) throws -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | (blocking ? 0 : Int32(SOCK_NONBLOCK.rawValue))
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw TimedOut(what: "a socket for port \(port) (errno \(errno))") }
        let host = address
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr(host)
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 || (!blocking && errno == EINPROGRESS) else {
            close(fd)
            throw TimedOut(what: "a raw connection to \(host):\(port)")
        }
        return fd
    }

    /// A Unix-domain connection to `path`, made without waiting to be accepted (the caller
    /// closes it): a peer that says nothing, as on a raw TCP connection.
    static func connect(unixPath path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TimedOut(what: "a socket for \(path) (errno \(errno))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in path.utf8.prefix(bytes.count - 1).enumerated() { bytes[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        // EAGAIN: the listener's queue is full; the connection was not made.
        guard connected == 0 || errno == EAGAIN else {
            close(fd)
            throw TimedOut(what: "a raw connection to \(path) (errno \(errno))")
        }
        return fd
    }

    /// Connects, writes `bytes`, ends its side of the connection and reads (discarding) until
    /// the peer closes the connection too, which it does only after reading what was sent (a
    /// ZeroMQ listener on garbage or at the end of the stream). Returns whether the peer closed
    /// within `timeout` seconds; the connection is closed in any case.
    @discardableResult
    static func send(_ bytes: [UInt8], port: Int, timeout: Double = 10) throws -> Bool {
        let fd = try connect(port: port)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, 50) > 0 else { continue }
            // 0: the peer's end of stream; -1: it reset the connection. Either way it is done.
            if recv(fd, &buffer, buffer.count, 0) <= 0 { return true }
        }
        return false
    }

    /// This machine's first IPv4 address that is not loopback, if it has one.
    static func nonLoopbackAddress() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else {
                continue
            }
            let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard let text = inet_ntoa(ipv4).map({ String(cString: $0) }), !text.hasPrefix("127.") else { continue }
            return text
        }
        return nil
    }
}
