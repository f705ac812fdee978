#if canImport(Glibc)
    import Glibc
#endif

/// Commands for a thread that sleeps in `zmq_poll` (the forwarding loop, the control server,
/// the ZAP handler, the HTTP gateway's link): a locked queue plus a self-pipe whose read end the
/// owner adds to its poll set, so that a posted command wakes it at once. Posting never blocks.
public final class Mailbox<Command: Sendable>: Sendable {
    /// Poll this for input; then call `take()`.
    public let fileDescriptor: Int32
    private let writeEnd: Int32
    private let queue = Locked<(commands: [Command], closed: Bool)>(([], false))

    public init() {
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
        Glibc.close(fileDescriptor)
        Glibc.close(writeEnd)
    }

    /// Posts `command`; false once the owner has closed the mailbox (`close`): nothing takes
    /// it then, and the caller answers whatever it was for.
    @discardableResult
    public func post(_ command: Command) -> Bool {
        let (posted, wasEmpty) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.closed else { return (false, false) }
            queue.commands.append(command)
            return (true, queue.commands.count == 1)
        }
        guard posted else { return false }
        // Only the first command of a batch needs to wake the owner: `take()` drains the pipe
        // before it empties the queue, so a command posted in between is taken with the rest.
        // A full pipe already means "wake up"; nothing is lost by a failed write.
        if wasEmpty {
            var byte: UInt8 = 1
            _ = write(writeEnd, &byte, 1)
        }
        return true
    }

    /// All commands posted so far, oldest first; clears the wake-up.
    public func take() -> [Command] {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(fileDescriptor, &buffer, buffer.count) == buffer.count {}
        return queue.withLock { pending in
            defer { pending.commands.removeAll(keepingCapacity: true) }
            return pending.commands
        }
    }

    /// The owner's last take: what was posted and not taken; every later `post` is refused.
    public func close() -> [Command] {
        queue.withLock { pending in
            pending.closed = true
            defer { pending.commands.removeAll() }
            return pending.commands
        }
    }
}
