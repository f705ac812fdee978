import Foundation

/// A unix datagram socket a test listens on: the `NOTIFY_SOCKET` of sd_notify, or the journal's
/// native socket. Records every datagram with the time it arrived.
final class DatagramListener {
    let path: String
    private let fd: Int32
    private(set) var received: [(time: Date, text: String)] = []

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() { buffer[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0 else { throw TimedOut(what: "binding a datagram socket at \(path)") }
        var bufferSize: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Reads what has arrived within `milliseconds`, appending to `received`.
    @discardableResult
    func collect(for milliseconds: Int) -> [String] {
        var new: [String] = []
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { break }
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, Int32(max(1, remaining * 1000))) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                received.append((Date(), text))
                new.append(text)
            }
        }
        return new
    }

    /// Waits until a datagram satisfying `match` arrives; returns it and when it came.
    /// Only datagrams that arrived after `after`, if given, count.
    func waitFor(
        _ what: String, after: Date? = nil, timeout: Double = 10, _ match: (String) -> Bool
    ) throws -> (time: Date, text: String) {
        let deadline = Date().addingTimeInterval(timeout)
        var checked = 0
        while Date() < deadline {
            for entry in received[checked...] where match(entry.text) && entry.time >= (after ?? .distantPast) {
                return entry
            }
            checked = received.count
            collect(for: 20)
        }
        throw TimedOut(what: "\(what) arrives on \(path); got \(received.map(\.text))")
    }
}
