import CZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// A `zmq_poll` set over sockets and plain file descriptors, built once and polled repeatedly
/// without allocating.
public struct Poller {
    private var items: [zmq_pollitem_t] = []

    public init() {}

    /// Adds a socket to watch for input; returns its index.
    @discardableResult
    public mutating func add(_ socket: Socket) -> Int {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: -1, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Adds a file descriptor (e.g. an eventfd) to watch for input; returns its index.
    @discardableResult
    public mutating func add(fileDescriptor: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: Int16(ZMQ_POLLIN), revents: 0))
        return items.count - 1
    }

    /// Turns input watching of item `index` on or off (e.g. while forwarding is paused).
    public mutating func setWatching(_ index: Int, _ watching: Bool) {
        items[index].events = watching ? Int16(ZMQ_POLLIN) : 0
    }

    /// Waits until an item is readable or the timeout (milliseconds, -1 = forever) expires.
    /// Returns the number of ready items; 0 on timeout or interruption.
    public mutating func poll(timeoutMilliseconds: Int) throws -> Int {
        let count = Int32(items.count)
        let result = items.withUnsafeMutableBufferPointer {
            zmq_poll($0.baseAddress, count, timeoutMilliseconds)
        }
        if result < 0 {
            let code = zmq_errno()
            if code == EINTR { return 0 }
            throw ZMQError(code: code, operation: "zmq_poll")
        }
        return Int(result)
    }

    /// True when item `index` was readable at the last poll.
    @inline(__always)
    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & Int16(ZMQ_POLLIN) != 0
    }

    /// Waits up to `timeoutMilliseconds` (-1: for ever) for one socket to become readable. A
    /// signal caught meanwhile does not end the wait early: false means the time is up.
    public static func waitReadable(_ socket: Socket, timeoutMilliseconds: Int) throws -> Bool {
        var poller = Poller()
        poller.add(socket)
        let deadline = timeoutMilliseconds < 0 ? nil : monotonicMilliseconds() + timeoutMilliseconds
        while true {
            let left = deadline.map { max(0, $0 - monotonicMilliseconds()) } ?? -1
            if try poller.poll(timeoutMilliseconds: left) > 0 { return true }
            // `poll` gives 0 both when the time is up and when a signal cut it short.
            if let deadline, monotonicMilliseconds() >= deadline { return false }
        }
    }

    private static func monotonicMilliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1_000 + now.tv_nsec / 1_000_000
    }
}
