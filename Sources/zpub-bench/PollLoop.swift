import ZeroMQ

/// The baseline a C programmer writes: one zmq_poll over PULL, XSUB and XPUB; data to XPUB in
/// bounded non-blocking bursts, subscriptions from XPUB to XSUB; no accounting, no limits.
/// Same socket options as zpubd's defaults, so only the broker's own work differs.
enum PollLoop {
    static func run(
        pull pullEndpoint: String, xsub xsubEndpoint: String, xpub xpubEndpoint: String, ioThreads: Int32 = 1,
        highWaterMarks: HighWaterMarks = HighWaterMarks(), control controlEndpoint: String? = nil
    ) throws {
        let context = try Context(ioThreads: ioThreads)
        let pull = try Socket(context, type: .pull)
        let xsub = try Socket(context, type: .xsub)
        let xpub = try Socket(context, type: .xpub)
        try pull.setOption(.receiveHighWaterMark, highWaterMarks.receive)
        try xsub.setOption(.receiveHighWaterMark, highWaterMarks.receive)
        try xsub.setOption(.sendHighWaterMark, 0)
        try xpub.setOption(.sendHighWaterMark, highWaterMarks.send)
        // Bound first: once the data ports accept connections, the control port does too.
        let control = try controlEndpoint.map { try HoldControl(context, binding: $0) }
        try pull.bind(pullEndpoint)
        try xsub.bind(xsubEndpoint)
        try xpub.bind(xpubEndpoint)

        var poller = Poller()
        let pullIndex = poller.add(pull)
        let xsubIndex = poller.add(xsub)
        let xpubIndex = poller.add(xpub)
        // Only for the backlog measurement: one more item per poll, as zpubd's mailbox is.
        let controlIndex = control.map { poller.add($0.socket) }
        let message = Message()
        while true {
            guard try poller.poll(timeoutMilliseconds: -1) > 0 else { continue }
            if poller.isReadable(xpubIndex) { try forward(from: xpub, to: xsub, message) }
            if poller.isReadable(pullIndex) { try forward(from: pull, to: xpub, message) }
            if poller.isReadable(xsubIndex) { try forward(from: xsub, to: xpub, message) }
            if let control, let controlIndex, poller.isReadable(controlIndex),
                try control.socket.receiveFrames(dontWait: true) == [Array(HoldControl.hold.utf8)]
            {
                try control.held()
            }
        }
    }

    /// Up to 512 whole messages, never blocking.
    @inline(__always)
    private static func forward(from source: Socket, to destination: Socket, _ message: Message) throws {
        for _ in 0..<512 {
            guard try source.receive(into: message, dontWait: true) else { return }
            var more = message.hasMore
            try destination.send(message, more: more, dontWait: true)
            while more {
                _ = try source.receive(into: message)
                more = message.hasMore
                try destination.send(message, more: more, dontWait: true)
            }
        }
    }
}
