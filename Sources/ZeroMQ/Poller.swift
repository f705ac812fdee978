import CZeroMQ

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

    /// Waits up to `timeoutMilliseconds` for one socket to become readable.
    public static func waitReadable(_ socket: Socket, timeoutMilliseconds: Int) throws -> Bool {
        var poller = Poller()
        poller.add(socket)
        return try poller.poll(timeoutMilliseconds: timeoutMilliseconds) > 0
    }
}
