import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Commands for the gateway's ZeroMQ thread, which sleeps in `zmq_poll`: a locked queue plus a
/// self-pipe whose read end is in the poll set, so that posting wakes the thread at once.
/// Posting never blocks (event loops post here).
final class LinkMailbox<Command: Sendable>: Sendable {
    let fileDescriptor: Int32
    private let writeEnd: Int32
    private let queue = Mutex<[Command]>([])

    init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed: errno \(errno)")
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        fileDescriptor = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(fileDescriptor)
        close(writeEnd)
    }

    func post(_ command: Command) {
        let wasEmpty = queue.withLock { queue in
            queue.append(command)
            return queue.count == 1
        }
        if wasEmpty {
            var byte: UInt8 = 1
            // A full pipe already means "wake up".
            _ = write(writeEnd, &byte, 1)
        }
    }

    /// Everything posted so far, oldest first; clears the wake-up.
    func take() -> [Command] {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(fileDescriptor, &buffer, buffer.count) == buffer.count {}
        return queue.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }
}
